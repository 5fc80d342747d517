"""SQLite storage: schema and migrations (schema.py), blob packing (codec.py), the writer behind the
``sqlite`` sink (writer.py) and readers (reader.py)."""

"""A synthetic scenario through the real daemon with the metrics processors under test."""

from pathlib import Path


def run_scenario(kinefuse_pipeline, tmp_path: Path, text: str, processors: list[dict]):
    """The scenario ``text`` (written to ``tmp_path``/scenario.toml) replayed as fast as it goes through
    ``processors``; checked to stop cleanly with no processor error."""
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(text)
    source = {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": False, "loop": False}
    result = kinefuse_pipeline(sources=[source], duration_s=120.0, processors=processors)
    assert result.exit_code == 0
    assert all(result.status["processors"][p["id"]]["errors"] == 0 for p in processors), result.status
    return result

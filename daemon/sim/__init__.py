"""The synthetic athlete: body model, motions, virtual cameras and IMUs with exact ground truth."""

"""The multiview tests' shared scene: three cameras around the synthetic walker (kinefuse.testing.walking_scenario)."""

THREE_CAMERAS = [
    {"name": "cam0", "position": [0.0, -4.0, 1.0], "target": [0.0, 0.0, 0.9]},
    {"name": "cam1", "position": [3.5, -2.5, 1.2], "target": [0.0, 0.0, 0.9]},
    {"name": "cam2", "position": [-3.5, -2.5, 1.4], "target": [0.0, 0.0, 0.9]},
]

"""An example kinefuse plugin: the ``acc_magnitude_peak`` metric and the ``sine_imu`` source."""

__version__ = "0.1.0"

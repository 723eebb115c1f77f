"""Stand-in of the real framework's builders that flbed's calibration calls."""

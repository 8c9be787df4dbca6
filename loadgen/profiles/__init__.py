"""Named data specs (TOML): smoke_fifth, smoke, ci, release, scale, scale100.

A package so that wheels ship the files."""

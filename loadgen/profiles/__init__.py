"""Named data specs (TOML): smoke, ci, release, scale. A package so that wheels ship the files."""

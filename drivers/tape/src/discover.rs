//! Tape device discovery from sysfs (placeholder).

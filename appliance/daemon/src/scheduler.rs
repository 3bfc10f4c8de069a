//! The scheduler (placeholder until the planning module lands).

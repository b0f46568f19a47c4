//! UI-format workflow conversion (being written).

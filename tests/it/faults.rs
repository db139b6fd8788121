//! Fault and reliability tests (being written).

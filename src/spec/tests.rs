//! Unit tests of the cluster spec.

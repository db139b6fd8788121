//! The one integration test binary: CLI tests, spec fixtures, and end-to-end
//! tests against real control planes from the test bed (see testbed.rs).
//! Nothing here is a mock: kube-apiserver, kube-controller-manager, helm,
//! kubectl and the vcluster syncer are the real programs. kwok stands in for
//! kubelets (Pods become Ready without containers), and where a test plays a
//! component's part it says so. Every virtual worker here runs in a real
//! vcluster; the fallback that plays the vcluster instead
//! (`start_simulating_vcluster`) is used by no test.

mod admission;
mod cli;
mod faults;
mod helpers;
mod hooks;
mod krew;
mod locks;
mod ownership;
mod permissions;
mod physical;
mod repository;
mod secrets;
mod serve;
mod smoke;
mod specs;
mod testbed;
mod virtual_;

pub use helpers::{Run, binary, labelled, nautes, physical_spec, repo, write_temp};

//! The Admin API's window on the node's ACME manager (Kong's acme plugin
//! endpoints): `POST /acme` orders a certificate for a host now, `PATCH
//! /acme` starts renewing the ones due, `GET /acme/certificates` lists what
//! was obtained.

use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// Why `POST /acme` obtained no certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcmeFailure {
    /// No enabled acme plugin (400).
    Off,
    /// The host is not in the plugin's `domains` (400).
    NotManaged(String),
    /// The order or the storage failed (500).
    Failed(String),
}

/// A future returned by [`AcmeControl::create`].
pub type CreateFuture = Pin<Box<dyn Future<Output = Result<(), AcmeFailure>> + Send>>;

/// The node's ACME manager as the Admin API drives it.
pub trait AcmeControl: Send + Sync + std::fmt::Debug {
    /// Orders a certificate for `host` and stores it.
    fn create(&self, host: String) -> CreateFuture;
    /// Starts renewing the certificates within `renew_threshold_days`.
    fn renew(&self);
    /// The certificates obtained so far, one JSON object each.
    fn certificates(&self) -> Vec<Value>;
}

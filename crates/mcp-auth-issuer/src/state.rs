//! The state every handler shares: configuration, keys, store, clock, metrics, rate limiter.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use aws_lc_rs::hmac;

use crate::clock::Clock;
use crate::config::IssuerConfig;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::rate_limit::FixedWindow;
use crate::store::Store;
use crate::users::User;

pub(crate) struct Shared {
    pub(crate) config: IssuerConfig,
    /// Issuer identifier and Frontend API URL, no trailing slash.
    pub(crate) base_url: String,
    pub(crate) secret_key: String,
    pub(crate) publishable_key: String,
    pub(crate) keys: RwLock<KeyRing>,
    pub(crate) store: Mutex<Store>,
    pub(crate) clock: Clock,
    pub(crate) metrics: Metrics,
    pub(crate) rate_limit: FixedWindow,
    /// Signs consent forms (CSRF protection); random per run.
    pub(crate) csrf_key: hmac::Key,
}

impl Shared {
    /// The store. A poisoned lock only means another request panicked mid-update; the maps are
    /// still usable, so recover rather than turn every later request into a 500.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn keys(&self) -> RwLockReadGuard<'_, KeyRing> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn keys_mut(&self) -> RwLockWriteGuard<'_, KeyRing> {
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn user(&self, id: &str) -> Option<&User> {
        self.config.users.iter().find(|u| u.id == id)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub(crate) fn is_supported_scope(&self, scope: &str) -> bool {
        self.config.scopes_supported.iter().any(|s| s == scope)
    }
}

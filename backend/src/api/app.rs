//! What the handlers share: the verifier, the counters, the notes domain and
//! the settings the routes read.

use std::sync::Arc;

use cognito_verifier::Verifier;

use super::requests::RequestCount;
use crate::config::{Config, LogoutConfig};
use crate::cors::CorsSettings;
use crate::metrics::Metrics;
use crate::notes::Notes;

/// The state every route handler gets.
pub struct App {
    /// Verifies callers (and holds the pool's keys, for `/ready`).
    pub auth: Arc<Verifier>,
    /// The registry every counter is in, rendered by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The count of answered requests.
    pub requests: Arc<RequestCount>,
    /// The notes domain (`NOTES_TABLE`).
    pub notes: Notes,
    /// Where `/logout` sends the browser, when configured.
    pub logout: Option<LogoutConfig>,
    /// The app client `/logout` names to Cognito (the first allowed one).
    pub logout_client_id: String,
    /// The origins other than this one allowed to call the API.
    pub cors: Arc<CorsSettings>,
    /// `ADMIN_GROUP`, the guard of `/api/admin`.
    pub admin_group: String,
    /// `PROFILE_SCOPE`, the guard of `/api/profile`.
    pub profile_scope: String,
}

impl App {
    /// Wires the app for `config`. Nothing is fetched yet: load the keys with
    /// `app.auth.load_keys()` (as [`crate::server::run`] does).
    pub fn from_config(config: &Config) -> Result<App, String> {
        let metrics = Arc::new(Metrics::default());
        let auth = Verifier::with_registry(config.verifier.clone(), metrics.registry())
            .map_err(|e| e.to_string())?;
        let auth = Arc::new(auth);
        Ok(App {
            auth,
            notes: Notes::new(config.notes.as_ref(), metrics.registry())?,
            requests: Arc::new(RequestCount::new(metrics.registry())),
            metrics,
            logout: config.logout.clone(),
            logout_client_id: config.verifier.user_pools()[0].client_ids()[0].clone(),
            cors: Arc::new(config.cors.clone()),
            admin_group: config.admin_group.clone(),
            profile_scope: config.profile_scope.clone(),
        })
    }
}

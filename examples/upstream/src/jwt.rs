//! The jwt example's upstream: a profile service, `GET /profiles/{id}`, answering the profiles
//! of `examples/jwt/profiles.json`, or 404 with `{"message": "profile <id> not found"}`.
//!
//! It knows nothing of tokens: Envoy's jwt_authn verified the caller, and the flow sends the
//! token's subject as the id.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The profiles, `examples/jwt/profiles.json`, compiled in.
const PROFILES_JSON: &str = include_str!("../../jwt/profiles.json");

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub email: String,
    pub team: String,
}

type Profiles = Arc<HashMap<String, Profile>>;

fn bundled_profiles() -> Profiles {
    let profiles: Vec<Profile> =
        serde_json::from_str(PROFILES_JSON).expect("examples/jwt/profiles.json is valid");
    Arc::new(profiles.into_iter().map(|profile| (profile.id.clone(), profile)).collect())
}

pub fn router() -> Router {
    Router::new().route("/profiles/{id}", get(get_profile)).with_state(bundled_profiles())
}

async fn get_profile(State(profiles): State<Profiles>, Path(id): Path<String>) -> Response {
    match profiles.get(&id) {
        Some(profile) => Json(profile.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "message": format!("profile {id} not found") })))
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_profiles_load() {
        let profiles = bundled_profiles();
        assert_eq!(profiles.len(), 2);
        assert_eq!(profiles["ada"].name, "Ada Lovelace");
    }
}

//! The getuser example's upstream: `GET /user/{id}` answers the user with that id from a JSON
//! file, or 404 with `{"message": "user <id> not found"}`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub username: String,
    pub email: String,
}

/// The users the upstream serves, by id.
pub type Users = Arc<HashMap<String, User>>;

/// `examples/getuser/users.json`, next to this crate.
pub fn default_data_path() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().unwrap_or(crate_dir).join("getuser/users.json")
}

/// Reads a JSON array of users; ids must be unique.
pub fn load_users(path: &Path) -> Result<Users, String> {
    let text =
        std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let users: Vec<User> = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not a JSON array of users: {error}", path.display()))?;
    let mut by_id = HashMap::with_capacity(users.len());
    for user in users {
        let id = user.id.clone();
        if by_id.insert(id.clone(), user).is_some() {
            return Err(format!("{}: user id {id:?} appears twice", path.display()));
        }
    }
    Ok(Arc::new(by_id))
}

pub fn router(users: Users) -> Router {
    Router::new().route("/user/{id}", get(get_user)).with_state(users)
}

async fn get_user(State(users): State<Users>, UrlPath(id): UrlPath<String>) -> Response {
    match users.get(&id) {
        Some(user) => Json(user.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "message": format!("user {id} not found") })))
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_users_load() {
        let users = load_users(&default_data_path()).unwrap();
        assert_eq!(users.len(), 3);
        assert_eq!(users["1"].name, "Ada Lovelace");
    }
}

//! `Remote`: `TestApp`'s request shortcuts for an app that runs elsewhere —
//! on real servers (`servers::run_app`) or in a spawned process
//! (`process::Service`) — where no in-memory broker holds the OTPs.

use reqwest::Client;
use serde_json::{Value, json};

use super::json;

/// The password every helper-made account has.
pub const PASSWORD: &str = "correct horse battery";

/// An HTTP client for the app at `base`.
#[derive(Clone)]
pub struct Remote {
    pub base: String,
    pub client: Client,
}

impl Remote {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: Client::new(),
        }
    }

    /// POSTs `body` to `path` (with a bearer token if given): status and
    /// JSON body.
    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        json(request.send().await.expect("the app answers")).await
    }

    /// `POST /authentication/register`.
    pub async fn register(&self, email: &str, password: &str) -> (u16, Value) {
        self.post(
            "/authentication/register",
            json!({"email": email, "password": password}),
            None,
        )
        .await
    }

    /// `POST /authentication/verify-otp`.
    pub async fn verify_otp(&self, email: &str, otp: &str) -> (u16, Value) {
        self.post(
            "/authentication/verify-otp",
            json!({"email": email, "otp": otp}),
            None,
        )
        .await
    }

    /// `POST /authentication/login`: status and body (the token is at
    /// `data.token`).
    pub async fn log_in(&self, email: &str, password: &str) -> (u16, Value) {
        self.post(
            "/authentication/login",
            json!({"email": email, "password": password}),
            None,
        )
        .await
    }
}

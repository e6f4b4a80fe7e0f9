//! `Remote`: `TestApp`'s request shortcuts for an app that runs elsewhere —
//! on real servers (`servers::run_app`) or in a spawned process
//! (`process::Service`) — where no in-memory broker holds the OTPs.

use reqwest::{Client, Method};
use serde_json::{Value, json};

use super::json;
use crate::servers::Probe;

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
        Self::with_client(base, Client::new())
    }

    /// The same with a client of the caller's (a timeout, a pool size).
    pub fn with_client(base: &str, client: Client) -> Self {
        Self {
            base: base.to_owned(),
            client,
        }
    }

    /// GETs `path` (with a bearer token if given): status and JSON body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        json(request.send().await.expect("the app answers")).await
    }

    /// The status of `GET path`, whatever the body.
    pub async fn get_status(&self, path: &str) -> u16 {
        let answer = self.client.get(format!("{}{path}", self.base)).send();
        answer.await.expect("the app answers").status().as_u16()
    }

    /// The text of `GET path` (`/metrics`), whatever its status.
    pub async fn text(&self, path: &str) -> String {
        let answer = self.client.get(format!("{}{path}", self.base)).send();
        let answer = answer.await.expect("the app answers");
        answer.text().await.expect("a text body")
    }

    /// Sends `method path` to an internal route with the `X-Internal-Key`
    /// header and `body` (none: an empty body): status and JSON body.
    pub async fn internal(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .client
            .request(method, url)
            .header("X-Internal-Key", key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        json(request.send().await.expect("the app answers")).await
    }

    /// `GET path` with the `X-Internal-Key` header: status and JSON body.
    pub async fn get_internal(&self, path: &str, key: &str) -> (u16, Value) {
        self.internal(Method::GET, path, key, None).await
    }

    /// `POST path` with the `X-Internal-Key` header and no body: status and
    /// JSON body.
    pub async fn post_internal(&self, path: &str, key: &str) -> (u16, Value) {
        self.internal(Method::POST, path, key, None).await
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

    /// `POST /authentication/register` with a locale (`vi`, `en`).
    pub async fn register_in(&self, email: &str, password: &str, locale: &str) -> (u16, Value) {
        let body = json!({"email": email, "password": password, "locale": locale});
        self.post("/authentication/register", body, None).await
    }

    /// The status of `POST /authentication/register`, or the client's error
    /// when no answer came (a refused connection, a timeout): for tests that
    /// register through an outage or a shutdown.
    pub async fn try_register(&self, email: &str, password: &str) -> reqwest::Result<u16> {
        let answer = self
            .client
            .post(format!("{}/authentication/register", self.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?;
        Ok(answer.status().as_u16())
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

    /// Logs in with `PASSWORD`: the bearer token.
    pub async fn token(&self, email: &str) -> String {
        let (status, body) = self.log_in(email, PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        body["data"]["token"].as_str().expect("a token").to_owned()
    }

    /// Registers `email` with `PASSWORD`, verifies it with the OTP its
    /// `email.verification_requested` carries (read off `emails`, a probe
    /// bound to `email.#`) and logs in: the user's id and a bearer token.
    pub async fn register_verified_user(
        &self,
        email: &str,
        emails: &mut Probe,
    ) -> (String, String) {
        let (status, registered) = self.register(email, PASSWORD).await;
        assert_eq!(status, 201, "{registered}");
        let id = registered["data"]["id"].as_str().expect("an id").to_owned();
        let otp = emails.otp_for(&id).await;
        let (status, verified) = self.verify_otp(email, &otp).await;
        assert_eq!(status, 200, "{verified}");
        (id, self.token(email).await)
    }
}

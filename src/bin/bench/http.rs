//! The load generator's HTTP client.

use serde_json::{json, Value};

/// An error with its causes: reqwest's own message leaves out what went wrong underneath.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[derive(Clone)]
pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
}

impl Http {
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, actix_web::web::Bytes), String> {
        let mut req = self.client.post(format!("{}{}", self.base, path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.map_err(|e| format!("{path}: {}", chain(&e)))?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await.map_err(|e| format!("{path}: {}", chain(&e)))?;
        Ok((status, bytes))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Result<(u16, Value), String> {
        let (status, bytes) = self.post_raw(path, token, body).await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    pub async fn post_ok(&self, path: &str, token: Option<&str>, body: &Value) -> Result<Value, String> {
        let (status, value) = self.post(path, token, body).await?;
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(format!("{path}: {status} {}", value["code"].as_str().unwrap_or("")))
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<String, String> {
        let v =
            self.post_ok("/api/v1/auth/login", None, &json!({ "username": username, "password": password })).await?;
        v["access_token"].as_str().map(str::to_owned).ok_or_else(|| "login: no access_token".into())
    }
}

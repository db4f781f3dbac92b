//! Authentication and authorisation.
//!
//! With `--auth none` (allowed only on a loopback address) every request is let through. With
//! `--auth tokens`, a request presents `Authorization: Bearer <token>`: the server's admin token
//! (given at start) or a token created with `coflux tokens create` ([`tokens::TokenStore`]).
//! Page loads of the web UI may present the token in the `coflux_token` cookie instead, for
//! reads only: anything that changes state needs the header, so a cross-site form cannot act.
//!
//! Every route declares its [`Scope`] ([`require`] wraps it); a [`Grant`] allows a scope for a
//! project (and environment, where the route names one) by its [`Role`]. Missing or invalid
//! credentials answer 401, a valid token outside its scope 403, both in the API's error shape.

pub mod tokens;

use std::net::IpAddr;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
pub use tokens::{TokenInfo, TokenStore};

/// Whether requests need a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No authentication (only on a loopback address).
    None,
    /// Bearer tokens.
    Tokens,
}

impl AuthMode {
    /// Parses `none` or `tokens`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(Self::None),
            "tokens" => Some(Self::Tokens),
            _ => None,
        }
    }

    /// The default for a bind address: none on loopback, tokens anywhere else.
    pub fn default_for(host: &str) -> Self {
        if is_loopback(host) {
            Self::None
        } else {
            Self::Tokens
        }
    }
}

/// Whether a bind address only accepts connections from this machine.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The scopes of a route: one for reads (`GET`, `HEAD`), one for everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// For `GET` and `HEAD`.
    pub read: Scope,
    /// For other methods.
    pub write: Scope,
}

impl Access {
    /// Open to all (health).
    pub const PUBLIC: Self = Self::both(Scope::Public);
    /// A project's resources: reads and changes by its users.
    pub const PROJECT: Self = Self {
        read: Scope::Read,
        write: Scope::Write,
    };
    /// A project's blobs, assets and manifests: its agents too.
    pub const DATA: Self = Self::both(Scope::Data);
    /// The list of projects (any token; the answer is limited to its project) and creating
    /// projects (the server's admin).
    pub const PROJECTS: Self = Self {
        read: Scope::Authenticated,
        write: Scope::Server,
    };
    /// A project's tokens: its admins.
    pub const TOKENS: Self = Self::both(Scope::Tokens);
    /// The agent endpoint.
    pub const AGENT: Self = Self::both(Scope::Agent);
    /// The cluster's nodes and their projects: the server's admin.
    pub const CLUSTER: Self = Self::both(Scope::Server);

    /// The same scope for every method.
    pub const fn both(scope: Scope) -> Self {
        Self {
            read: scope,
            write: scope,
        }
    }

    /// The scope for a method.
    pub fn for_method(self, method: &actix_web::http::Method) -> Scope {
        if matches!(method.as_str(), "GET" | "HEAD") {
            self.read
        } else {
            self.write
        }
    }
}

/// What a token may do within its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Connect as an agent, register manifests, move blobs and assets.
    Agent,
    /// Everything a person does: read, submit, re-run, cancel, manage environments.
    User,
    /// What a user does, and manage the project's tokens.
    Admin,
}

impl Role {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Agent, Self::User, Self::Admin]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Nothing (health).
    Public,
    /// Any valid token (e.g. listing projects: the answer is limited to what it may see).
    Authenticated,
    /// The server's admin token (e.g. creating projects).
    Server,
    /// Reading the route's project: users and admins.
    Read,
    /// Changing the route's project: users and admins.
    Write,
    /// Blobs, assets and manifests of the route's project: agents too.
    Data,
    /// The agent endpoint: agent tokens (and admins); project and environment are checked
    /// when the agent says hello.
    Agent,
    /// Managing the route's project's tokens: admins.
    Tokens,
}

/// What a request is allowed, from its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The project; `None` for every project (the server's admin token, or no authentication).
    pub project: Option<String>,
    /// The environments, as a pattern with `*`; `None` for all.
    pub environments: Option<String>,
    /// Its role.
    pub role: Role,
    /// The token's id (`None` for the admin token or no authentication).
    pub token: Option<String>,
}

impl Grant {
    /// Everything (the admin token, or no authentication).
    pub fn everything() -> Self {
        Self {
            project: None,
            environments: None,
            role: Role::Admin,
            token: None,
        }
    }

    /// Whether it is the server's admin (every project).
    pub fn is_server_admin(&self) -> bool {
        self.project.is_none() && self.role == Role::Admin
    }

    /// Whether it may act on `project`.
    pub fn covers_project(&self, project: &str) -> bool {
        self.project.as_deref().is_none_or(|p| p == project)
    }

    /// Whether it may act in `environment`.
    pub fn covers_environment(&self, environment: &str) -> bool {
        self.environments
            .as_deref()
            .is_none_or(|pattern| matches_pattern(pattern, environment))
    }

    /// Whether it allows `scope` on a route naming `project` and `environment`.
    pub fn allows(&self, scope: Scope, project: Option<&str>, environment: Option<&str>) -> bool {
        let role_ok = match scope {
            Scope::Public | Scope::Authenticated => return true,
            Scope::Server => return self.is_server_admin(),
            Scope::Read | Scope::Write => matches!(self.role, Role::User | Role::Admin),
            Scope::Data => true,
            Scope::Agent => matches!(self.role, Role::Agent | Role::Admin),
            Scope::Tokens => self.role == Role::Admin,
        };
        role_ok
            && project.is_none_or(|p| self.covers_project(p))
            && environment.is_none_or(|e| self.covers_environment(e))
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The server's authentication settings and tokens.
pub struct Auth {
    mode: AuthMode,
    admin_hash: Option<[u8; 32]>,
    tokens: TokenStore,
}

/// The cookie the web UI's pages may present the token in (reads only).
pub const COOKIE: &str = "coflux_token";

impl Auth {
    /// Authentication in `mode`, with the admin token (hashed at once) and the token store.
    pub fn new(mode: AuthMode, admin_token: Option<&str>, tokens: TokenStore) -> Self {
        Self {
            mode,
            admin_hash: admin_token.map(tokens::hash),
            tokens,
        }
    }

    /// No authentication, with an empty in-memory token store (for apps assembled in tests).
    pub fn none() -> Self {
        let tokens = TokenStore::in_memory().expect("an in-memory SQLite database opens");
        Self::new(AuthMode::None, None, tokens)
    }

    /// The mode.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The token store.
    pub fn tokens(&self) -> &TokenStore {
        &self.tokens
    }

    /// What a presented token grants (`None` if it is not valid).
    pub fn grant_for(&self, token: &str, now: i64) -> Option<Grant> {
        if let Some(admin) = &self.admin_hash
            && tokens::same_hash(admin, &tokens::hash(token))
        {
            return Some(Grant::everything());
        }
        self.tokens.verify(token, now)
    }

    /// What a request is granted: everything without authentication; else from its bearer
    /// token (or, for reads, the UI's cookie). `None` when it presents no valid token.
    pub fn authenticate(&self, req: &actix_web::HttpRequest) -> Option<Grant> {
        if self.mode == AuthMode::None {
            return Some(Grant::everything());
        }
        let now = coflux_core::model::now_millis();
        let bearer = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(token) = bearer {
            return self.grant_for(token.trim(), now);
        }
        let read = matches!(req.method().as_str(), "GET" | "HEAD");
        let cookie = req.cookie(COOKIE).filter(|_| read)?;
        self.grant_for(cookie.value(), now)
    }
}

/// The future of [`require`]'s check.
pub type Checking<B> = futures::future::LocalBoxFuture<
    'static,
    Result<ServiceResponse<EitherBody<B>>, actix_web::Error>,
>;

/// Middleware checking that a request's token allows the route's scope (by method, see
/// [`Access`]) on its `{project}` and `{environment}`; the [`Grant`] is left in the request's
/// extensions for the handler.
pub fn require<B: MessageBody + 'static>(
    access: Access,
) -> impl Fn(ServiceRequest, Next<B>) -> Checking<B> + Clone {
    require_rendered(access, |error| error.error_response())
}

/// Like [`require`], with refusals rendered by `render` (the web UI answers HTML pages).
pub fn require_rendered<B: MessageBody + 'static>(
    access: Access,
    render: fn(&ApiError) -> actix_web::HttpResponse,
) -> impl Fn(ServiceRequest, Next<B>) -> Checking<B> + Clone {
    move |req: ServiceRequest, next: Next<B>| {
        Box::pin(async move {
            req.extensions_mut().insert(Checked);
            match check(access.for_method(req.method()), &req) {
                Ok(grant) => {
                    req.extensions_mut().insert(grant);
                    next.call(req)
                        .await
                        .map(ServiceResponse::map_into_left_body)
                }
                Err(error) => {
                    let response = render(&error);
                    Ok(req.into_response(response).map_into_right_body())
                }
            }
        })
    }
}

/// Marks a request whose scope was checked (see [`audit`]).
#[derive(Debug, Clone, Copy)]
pub struct Checked;

/// App-wide middleware that catches a route answering without having declared a scope (it
/// would be open to anyone): logged as an error, and in debug builds (tests) answered with a
/// 500 so that a test of the route fails.
pub async fn audit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let response = next.call(req).await?;
    let request = response.request();
    let unchecked = request.match_pattern().is_some()
        && request.extensions().get::<Checked>().is_none()
        && !matches!(response.status().as_u16(), 404 | 405);
    if unchecked {
        tracing::error!(path = %request.path(), "a route without a declared scope answered");
        if cfg!(debug_assertions) {
            let error = ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "route_without_scope",
                "this route declares no scope",
            );
            let (request, _) = response.into_parts();
            return Ok(ServiceResponse::new(request, error.error_response()));
        }
    }
    Ok(response.map_into_boxed_body())
}

fn check(scope: Scope, req: &ServiceRequest) -> Result<Grant, ApiError> {
    if scope == Scope::Public {
        return Ok(Grant::everything());
    }
    // Fail closed: an app without authentication settings answers nothing but public routes.
    let Some(auth) = req.app_data::<web::Data<Auth>>() else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server is not set up",
        ));
    };
    let Some(grant) = auth.authenticate(req.request()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid token is required (Authorization: Bearer …)",
        ));
    };
    let project = req.match_info().get("project");
    let environment = req.match_info().get("environment");
    if grant.allows(scope, project, environment) {
        Ok(grant)
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token does not allow that here",
        ))
    }
}

/// The grant a handler's request was checked with (everything if none was recorded).
pub fn grant_of(req: &actix_web::HttpRequest) -> Grant {
    req.extensions()
        .get::<Grant>()
        .cloned()
        .unwrap_or_else(Grant::everything)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(project: &str, environments: Option<&str>, role: Role) -> Grant {
        Grant {
            project: Some(project.into()),
            environments: environments.map(str::to_owned),
            role,
            token: Some("t".into()),
        }
    }

    #[test]
    fn auth_patterns_match_with_stars() {
        assert!(matches_pattern("dev-*", "dev-alice"));
        assert!(matches_pattern("*", "anything"));
        assert!(matches_pattern("production", "production"));
        assert!(!matches_pattern("production", "production2"));
        assert!(matches_pattern("a*b*c", "aXXbYYc"));
        assert!(!matches_pattern("a*b*c", "aXXcYYb"));
        assert!(!matches_pattern("dev-*", "staging"));
    }

    #[test]
    fn auth_scope_matrix_by_role_project_and_environment() {
        use Scope::*;
        let agent = token("acme", Some("dev-*"), Role::Agent);
        let user = token("acme", None, Role::User);
        let admin = token("acme", None, Role::Admin);
        let server = Grant::everything();
        let p = Some("acme");
        let cases = [
            (Read, &agent, p, None, false),
            (Write, &agent, p, None, false),
            (Data, &agent, p, None, true),
            (Agent, &agent, p, Some("dev-1"), true),
            (Agent, &agent, p, Some("production"), false),
            (Agent, &agent, Some("other"), Some("dev-1"), false),
            (Tokens, &agent, p, None, false),
            (Read, &user, p, None, true),
            (Write, &user, p, Some("production"), true),
            (Write, &user, Some("other"), None, false),
            (Agent, &user, p, Some("production"), false),
            (Tokens, &user, p, None, false),
            (Server, &user, None, None, false),
            (Tokens, &admin, p, None, true),
            (Tokens, &admin, Some("other"), None, false),
            (Server, &admin, None, None, false),
            (Server, &server, None, None, true),
            (Write, &server, Some("other"), Some("x"), true),
            (Public, &agent, None, None, true),
            (Authenticated, &agent, None, None, true),
        ];
        for (scope, grant, project, environment, expected) in cases {
            assert_eq!(
                grant.allows(scope, project, environment),
                expected,
                "{scope:?} for {grant:?} on {project:?}/{environment:?}"
            );
        }
    }

    #[test]
    fn auth_defaults_to_tokens_off_loopback() {
        assert_eq!(AuthMode::default_for("127.0.0.1"), AuthMode::None);
        assert_eq!(AuthMode::default_for("::1"), AuthMode::None);
        assert_eq!(AuthMode::default_for("[::1]"), AuthMode::None);
        assert_eq!(AuthMode::default_for("localhost"), AuthMode::None);
        assert_eq!(AuthMode::default_for("0.0.0.0"), AuthMode::Tokens);
        assert_eq!(AuthMode::default_for("192.168.1.4"), AuthMode::Tokens);
    }
}

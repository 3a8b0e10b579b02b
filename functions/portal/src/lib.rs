//! The portal Lambda's adapter: requests under `/portal/` in, server-rendered pages out. A
//! partner opens a one-time link (`hookctl portal link TENANT`), which becomes a session cookie;
//! every page reads its tenant from that session and nowhere else. Forms post back with the
//! session's CSRF token; a read-only session may look at everything and change nothing. The
//! work is the outbound use cases in `shared`; this crate routes, checks and renders.

mod catalog_pages;
mod chart;
pub mod inbound;
mod message_pages;
mod operator_pages;
mod pages;
mod verify_page;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use lambda_http::{
    Body, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};
use shared::{
    aws::{DynamoOutboundStore, DynamoPortalStore, KmsLinkSigner, SqsDeliveryQueue},
    clock::{Clock, SystemClock},
    env::{Env, EnvError},
    ids::EventId,
    outbound::{
        admin::{AdminError, EndpointChange},
        catalog::CatalogError,
        dispatch::Dispatcher,
        endpoint::CustomHeaders,
        ids::{EndpointId, EventType, MessageId},
        ports::{DeliveryQueue, DeliveryRetryQueue, OutboundStore, Transport},
        recovery::RecoveryError,
        transport::HttpTransport,
    },
    portal::{LinkSigner, PortalAccess, PortalError, PortalStore, Session},
    processor::{Jitter, SystemJitter},
    provider::Provider,
};
use subtle::ConstantTimeEq;
use tracing::{info, warn};

pub use pages::Notice;

/// The session cookie. `Path=/portal`, so no other route ever sees it.
pub const COOKIE: &str = "portal_session";
/// The landing page's double-submit check, read back by the login form's POST.
pub const LOGIN_COOKIE: &str = "portal_login";
/// How far back *Recover failed since…* may look, in hours: the choices the form offers.
pub(crate) const RECOVER_HOURS: [u64; 5] = [1, 6, 24, 72, 168];
/// Attempts shown per endpoint page (and drawn in its chart).
const ATTEMPTS_SHOWN: u32 = 100;
/// Messages read for the filter's suggestions.
const PUBLISHED_TYPES_READ: u32 = 200;
/// The largest form the portal reads.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The portal wired to DynamoDB, SQS, KMS and the network, as deployed.
pub type AwsPortal = Portal<
    DynamoPortalStore,
    KmsLinkSigner,
    SystemClock,
    DynamoOutboundStore,
    SqsDeliveryQueue,
    SqsDeliveryQueue,
    HttpTransport,
    SystemClock,
    SystemJitter,
>;

/// The function's configuration: the dispatcher's (the portal sends test events), the replay
/// function's (operators' pages) and the links' key.
#[derive(Debug, Clone)]
pub struct Config {
    pub dispatcher: dispatcher::Config,
    pub replay: replay::Config,
    pub link_key: String,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + Clone) -> Result<Self, EnvError> {
        Ok(Self {
            dispatcher: dispatcher::Config::from_lookup(lookup.clone())?,
            replay: replay::Config::from_lookup(lookup.clone())?,
            link_key: Env(lookup).required("PORTAL_LINK_KEY_ID")?,
        })
    }
}

/// Build the deployed portal: SDK clients once per cold start.
pub fn build(sdk: &aws_config::SdkConfig, config: &Config) -> Result<AwsPortal, std::io::Error> {
    let access = PortalAccess::new(
        DynamoPortalStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &config.dispatcher.outbound_table,
        ),
        KmsLinkSigner::new(aws_sdk_kms::Client::new(sdk), &config.link_key),
        SystemClock,
    );
    let operations = replay::build(sdk, &config.replay).operations;
    Ok(
        Portal::new(access, dispatcher::build(sdk, &config.dispatcher)?)
            .with_inbound(Arc::new(operations)),
    )
}

/// The portal over its ports.
#[derive(Debug)]
pub struct Portal<PS, L, PC, S, Q, R, T, C, J> {
    pub access: PortalAccess<PS, L, PC>,
    pub dispatcher: Dispatcher<S, Q, R, T, C, J>,
    /// The operator pages' use cases; without them, operator sessions see the partner pages.
    pub inbound: Option<Arc<dyn inbound::Inbound>>,
}

/// A page's answer before it becomes a response.
enum Answer {
    Page(StatusCode, String),
    Redirect(String),
    /// A new session: its cookie lives as long as the session, by the portal's clock.
    SignedIn {
        session_id: String,
        max_age: Duration,
        to: String,
    },
    SignedOut,
    /// The page a link lands on: a button that opens the portal (a POST spends the link, so a
    /// mail scanner's prefetch does not), with the login check's cookie.
    OpenPortal {
        token: String,
        check: String,
    },
}

fn page(status: StatusCode, html: maud::Markup) -> Answer {
    Answer::Page(status, html.into_string())
}

fn error_page(status: StatusCode, message: &str) -> Answer {
    page(status, pages::error(status, message))
}

fn refused_link(e: PortalError) -> Answer {
    match e {
        PortalError::Unavailable(e) => unavailable(&e),
        e => {
            warn!(security = true, error = %e, "portal link refused");
            error_page(StatusCode::FORBIDDEN, &e.to_string())
        }
    }
}

impl<PS, L, PC, S, Q, R, T, C, J> Portal<PS, L, PC, S, Q, R, T, C, J>
where
    PS: PortalStore,
    L: LinkSigner,
    PC: Clock,
    S: OutboundStore,
    Q: DeliveryQueue,
    R: DeliveryRetryQueue,
    T: Transport,
    C: Clock,
    J: Jitter,
{
    pub fn new(access: PortalAccess<PS, L, PC>, dispatcher: Dispatcher<S, Q, R, T, C, J>) -> Self {
        Self {
            access,
            dispatcher,
            inbound: None,
        }
    }

    /// Serve the operator pages through `inbound`.
    pub fn with_inbound(mut self, inbound: Arc<dyn inbound::Inbound>) -> Self {
        self.inbound = Some(inbound);
        self
    }

    /// Answer one request. Never an error: a client's mistake is a page saying what it was.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let answer = self.route(&request).await;
        respond(answer)
    }

    async fn route(&self, request: &Request) -> Answer {
        let path = request.uri().path().trim_end_matches('/');
        let Some(rest) = path.strip_prefix("/portal") else {
            return error_page(StatusCode::NOT_FOUND, "There is no such page.");
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let method = request.method();
        if segments == ["login"] && method == Method::GET {
            return self.landing(request).await;
        }
        if segments == ["login"] && method == Method::POST {
            return self.login(request).await;
        }
        let session = match self.session(request).await {
            Ok(Some(session)) => session,
            Ok(None) => {
                return error_page(
                    StatusCode::UNAUTHORIZED,
                    "Your session has ended or this browser has none. Ask for a new portal link.",
                );
            }
            Err(e) => return unavailable(&e.to_string()),
        };
        if *method == Method::POST {
            let form = match read_form(request) {
                Ok(form) => form,
                Err(answer) => return answer,
            };
            if !form
                .get("csrf")
                .is_some_and(|token| session.csrf_matches(token))
            {
                warn!(security = true, tenant = %session.tenant, "portal form without a valid CSRF token");
                return error_page(
                    StatusCode::FORBIDDEN,
                    "This form has expired. Reload the page and try again.",
                );
            }
            if segments == ["logout"] {
                let _ = self.access.sign_out(&session).await;
                return Answer::SignedOut;
            }
            if session.read_only {
                return error_page(
                    StatusCode::FORBIDDEN,
                    "This is a read-only session: it cannot change anything.",
                );
            }
            return match segments.as_slice() {
                ["dlq", "redrive"] => self.operate(&session, &segments, request).await,
                ["events", "replay"] => self.replay(&session, &form).await,
                ["endpoints"] => self.add(&session, &form).await,
                ["endpoints", id, action] => self.act(&session, id, action, &form).await,
                ["event-types", name, "send"] => self.send_example(&session, name, &form).await,
                _ => error_page(StatusCode::NOT_FOUND, "There is no such action."),
            };
        }
        if *method != Method::GET {
            return error_page(StatusCode::METHOD_NOT_ALLOWED, "Not allowed.");
        }
        let notice = query(request)
            .get("done")
            .and_then(|done| Notice::from_code(done));
        match segments.as_slice() {
            [] => Answer::Redirect("/portal/endpoints".into()),
            ["endpoints"] => self.endpoints(&session, notice, None).await,
            ["endpoints", id] => self.endpoint(&session, id, notice, None).await,
            ["messages"] => self.messages(&session, request).await,
            ["messages", id] => self.message(&session, id, request).await,
            ["event-types"] => self.event_types(&session).await,
            ["event-types", name] => self.event_type(&session, name, None).await,
            ["verify"] => page(StatusCode::OK, verify_page::page(&session)),
            ["events" | "health" | "dlq", ..] => self.operate(&session, &segments, request).await,
            _ => error_page(StatusCode::NOT_FOUND, "There is no such page."),
        }
    }

    /// The operator pages. A partner's session gets the same answer as for a page that does
    /// not exist.
    async fn operate(&self, session: &Session, segments: &[&str], request: &Request) -> Answer {
        let (true, Some(inbound)) = (session.operator, &self.inbound) else {
            return error_page(StatusCode::NOT_FOUND, "There is no such page.");
        };
        let tenant = &session.tenant;
        let mut query = query(request);
        let result = match segments {
            ["events"] => {
                let status = query
                    .remove("status")
                    .filter(|s| operator_pages::STATUSES.contains(&s.as_str()))
                    .unwrap_or_else(|| "dead".to_owned());
                inbound
                    .list(tenant, &status, query.remove("next"))
                    .await
                    .map(|list| {
                        page(
                            StatusCode::OK,
                            operator_pages::events(session, &status, &list),
                        )
                    })
            }
            ["events", "lookup"] => {
                let provider = query
                    .get("provider")
                    .map(String::as_str)
                    .unwrap_or_default();
                let id = query.get("id").map(|id| id.trim()).unwrap_or_default();
                match (provider.parse::<Provider>(), EventId::parse(id)) {
                    (Ok(provider), Ok(id)) => Ok(Answer::Redirect(format!(
                        "/portal/events/{}/{}",
                        provider.as_str(),
                        encode(id.as_str())
                    ))),
                    _ => Ok(error_page(
                        StatusCode::BAD_REQUEST,
                        "Give a provider and an event id (printable characters, no spaces).",
                    )),
                }
            }
            ["events", provider, id] => {
                let id = decode_segment(id);
                let (Ok(provider), Ok(id)) = (provider.parse::<Provider>(), EventId::parse(&id))
                else {
                    return error_page(StatusCode::NOT_FOUND, "There is no such event.");
                };
                let show = query.get("payload").is_some_and(|p| p == "show");
                inbound
                    .record(tenant, provider, &id)
                    .await
                    .map(|record| match record {
                        Some(record) => page(
                            StatusCode::OK,
                            operator_pages::event(session, &record, show),
                        ),
                        None => error_page(StatusCode::NOT_FOUND, "There is no such event."),
                    })
            }
            ["health"] => inbound
                .health(tenant)
                .await
                .map(|report| page(StatusCode::OK, operator_pages::health(session, &report))),
            // The tenant's dead events, from the status index: reading the DLQ itself would
            // hide every tenant's messages of the shared queue for a while. Only the redrive
            // (a POST) reads it.
            ["dlq"] => inbound
                .list(tenant, "dead", None)
                .await
                .map(|dead| page(StatusCode::OK, operator_pages::dlq_waiting(session, &dead))),
            ["dlq", "redrive"] => {
                let note = format!("portal: operator session of {tenant}");
                info!(%tenant, "DLQ redrive from the portal");
                inbound
                    .redrive(tenant, false, &note)
                    .await
                    .map(|summary| page(StatusCode::OK, operator_pages::dlq(session, &summary)))
            }
            _ => return error_page(StatusCode::NOT_FOUND, "There is no such page."),
        };
        result.unwrap_or_else(|e| unavailable(&e))
    }

    /// Replay the events the form names (`provider/id` per line, one page of the list at
    /// most): a dry run that says what would go and what would not, then the same form with
    /// `confirm`. Operators only.
    async fn replay(&self, session: &Session, form: &HashMap<String, String>) -> Answer {
        let (true, Some(inbound)) = (session.operator, &self.inbound) else {
            return error_page(StatusCode::NOT_FOUND, "There is no such page.");
        };
        let listed = form.get("events").map(String::as_str).unwrap_or_default();
        let mut by_provider: BTreeMap<Provider, Vec<EventId>> = BTreeMap::new();
        let mut count = 0;
        for line in listed.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let parsed = line.split_once('/').and_then(|(provider, id)| {
                Some((provider.parse::<Provider>().ok()?, EventId::parse(id).ok()?))
            });
            let Some((provider, id)) = parsed else {
                return error_page(StatusCode::BAD_REQUEST, "That is not a list of events.");
            };
            by_provider.entry(provider).or_default().push(id);
            count += 1;
        }
        if count == 0 || count > inbound::MAX_REPLAYED as usize {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("Replay 1 to {} events at a time.", inbound::MAX_REPLAYED),
            );
        }
        let dry_run = form.get("confirm").is_none_or(|c| c != "yes");
        let tenant = &session.tenant;
        let note = format!("portal: operator session of {tenant}");
        let mut summaries = Vec::new();
        for (provider, ids) in &by_provider {
            match inbound.replay(tenant, *provider, ids, dry_run, &note).await {
                Ok(summary) => summaries.push(summary),
                Err(e) => return unavailable(&e),
            }
        }
        if !dry_run {
            info!(%tenant, events = count, "events replayed from the portal");
        }
        page(
            StatusCode::OK,
            operator_pages::replayed(session, &summaries, dry_run, listed),
        )
    }

    /// Where a link lands: checked (not spent), then a button that opens the portal. A GET
    /// changes nothing, so a mail scanner that fetches the link leaves it usable.
    async fn landing(&self, request: &Request) -> Answer {
        let Some(token) = query(request).remove("token") else {
            return error_page(StatusCode::BAD_REQUEST, "This link has no token.");
        };
        if let Err(e) = self.access.check(&token).await {
            return refused_link(e);
        }
        match shared::portal::login_check() {
            Ok(check) => Answer::OpenPortal { token, check },
            Err(e) => unavailable(&e.to_string()),
        }
    }

    /// The landing page's button: the link is spent and the session opened, if the form came
    /// from that page in this browser (its check matches the cookie the page set, which a
    /// form on another site cannot send: `SameSite=Strict`).
    async fn login(&self, request: &Request) -> Answer {
        let form = match read_form(request) {
            Ok(form) => form,
            Err(answer) => return answer,
        };
        let (Some(token), Some(check)) = (form.get("token"), form.get("check")) else {
            return error_page(StatusCode::BAD_REQUEST, "This form has no link in it.");
        };
        let cookie = cookie(request, LOGIN_COOKIE).unwrap_or_default();
        if check.is_empty() || !bool::from(cookie.as_bytes().ct_eq(check.as_bytes())) {
            warn!(
                security = true,
                "portal login without its landing page's check"
            );
            return error_page(
                StatusCode::FORBIDDEN,
                "Open the portal link again, in this browser.",
            );
        }
        match self.access.exchange(token).await {
            Ok(session) => {
                info!(tenant = %session.tenant, read_only = session.read_only, "portal session opened");
                let max_age = session
                    .expires_at
                    .duration_since(self.access.clock.now())
                    .unwrap_or(Duration::ZERO);
                Answer::SignedIn {
                    session_id: session.id,
                    max_age,
                    to: "/portal/endpoints".into(),
                }
            }
            Err(e) => refused_link(e),
        }
    }

    /// The types the tenant has published, for the filter field; none for a read-only session
    /// (it has no form) or when the log cannot be read (the field still takes any pattern).
    async fn published_types(&self, session: &Session) -> Vec<EventType> {
        if session.read_only {
            return Vec::new();
        }
        self.dispatcher
            .outbound
            .store
            .published_types(&session.tenant, PUBLISHED_TYPES_READ)
            .await
            .unwrap_or_default()
    }

    async fn session(&self, request: &Request) -> Result<Option<Session>, PortalError> {
        match cookie(request, COOKIE) {
            Some(id) => self.access.session(&id).await,
            None => Ok(None),
        }
    }

    /// The endpoints page, with the add form's `problem` and input when it was refused.
    async fn endpoints(
        &self,
        session: &Session,
        notice: Option<Notice>,
        refused: Option<(&str, &HashMap<String, String>)>,
    ) -> Answer {
        let outbound = &self.dispatcher.outbound;
        let types = self.published_types(session).await;
        match outbound.store.endpoints(&session.tenant).await {
            Ok(endpoints) => {
                let status = if refused.is_some() {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                };
                let now = outbound.clock.now();
                page(
                    status,
                    pages::endpoints(session, &endpoints, &types, now, notice, refused),
                )
            }
            Err(e) => unavailable(&e.to_string()),
        }
    }

    async fn endpoint(
        &self,
        session: &Session,
        id: &str,
        notice: Option<Notice>,
        extra: Option<pages::Extra>,
    ) -> Answer {
        let Ok(id) = EndpointId::parse(id) else {
            return error_page(StatusCode::NOT_FOUND, "There is no such endpoint.");
        };
        let outbound = &self.dispatcher.outbound;
        let endpoint = match outbound.store.endpoint(&session.tenant, &id).await {
            Ok(Some(endpoint)) => endpoint,
            // Another tenant's endpoint is no endpoint: the same page as a missing one.
            Ok(None) => return error_page(StatusCode::NOT_FOUND, "There is no such endpoint."),
            Err(e) => return unavailable(&e.to_string()),
        };
        let attempts = match outbound
            .store
            .attempts_of_endpoint(&session.tenant, &id, ATTEMPTS_SHOWN, None)
            .await
        {
            Ok(page) => page.items,
            Err(e) => return unavailable(&e.to_string()),
        };
        let types = self.published_types(session).await;
        let now = outbound.clock.now();
        let status = match &extra {
            Some(pages::Extra::Refused(..)) => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        };
        page(
            status,
            pages::endpoint(session, &endpoint, &attempts, &types, now, notice, extra),
        )
    }

    /// The message log, filtered as the query asks; `?id=` goes to that message.
    async fn messages(&self, session: &Session, request: &Request) -> Answer {
        let mut asked = query(request);
        if let Some(id) = asked.remove("id") {
            return Answer::Redirect(format!("/portal/messages/{}", encode(id.trim())));
        }
        let outbound = &self.dispatcher.outbound;
        let query = message_pages::Query::parse(asked, outbound.clock.now());
        let endpoints = match outbound.store.endpoints(&session.tenant).await {
            Ok(endpoints) => endpoints,
            Err(e) => return unavailable(&e.to_string()),
        };
        // Another tenant's endpoint id lists nothing: the log reads the session's tenant only.
        match outbound
            .message_log(&session.tenant, &query.filter, message_pages::SHOWN)
            .await
        {
            Ok(listed) => page(
                StatusCode::OK,
                message_pages::messages(session, &query, &endpoints, &listed),
            ),
            Err(e) => unavailable(&e.to_string()),
        }
    }

    /// One message: payload on request, deliveries, attempts.
    async fn message(&self, session: &Session, id: &str, request: &Request) -> Answer {
        let Ok(id) = MessageId::parse(&decode_segment(id)) else {
            return error_page(StatusCode::NOT_FOUND, "There is no such message.");
        };
        let outbound = &self.dispatcher.outbound;
        let detail = match outbound.message_detail(&session.tenant, &id).await {
            Ok(Some(detail)) => detail,
            Ok(None) => return error_page(StatusCode::NOT_FOUND, "There is no such message."),
            Err(e) => return unavailable(&e.to_string()),
        };
        let endpoints = match outbound.store.endpoints(&session.tenant).await {
            Ok(endpoints) => endpoints,
            Err(e) => return unavailable(&e.to_string()),
        };
        let show = query(request).get("payload").is_some_and(|p| p == "show");
        page(
            StatusCode::OK,
            message_pages::message(session, &id, &detail, &endpoints, show),
        )
    }

    /// The tenant's event catalog.
    async fn event_types(&self, session: &Session) -> Answer {
        match self.dispatcher.outbound.event_types(&session.tenant).await {
            Ok(types) => page(StatusCode::OK, catalog_pages::event_types(session, &types)),
            Err(e) => unavailable(&e.to_string()),
        }
    }

    /// One event type, with what sending one of its examples did.
    async fn event_type(
        &self,
        session: &Session,
        name: &str,
        sent: Option<catalog_pages::Sent>,
    ) -> Answer {
        let outbound = &self.dispatcher.outbound;
        let Ok(name) = EventType::parse(&decode_segment(name)) else {
            return error_page(StatusCode::NOT_FOUND, "There is no such event type.");
        };
        let definition = match outbound.event_type(&session.tenant, &name).await {
            Ok(definition) => definition,
            Err(CatalogError::Unknown(_)) => {
                return error_page(StatusCode::NOT_FOUND, "There is no such event type.");
            }
            Err(e) => return unavailable(&e.to_string()),
        };
        let endpoints = if session.read_only {
            Vec::new()
        } else {
            match outbound.store.endpoints(&session.tenant).await {
                Ok(endpoints) => endpoints,
                Err(e) => return unavailable(&e.to_string()),
            }
        };
        let status = match &sent {
            Some(catalog_pages::Sent::Refused(_)) => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        };
        page(
            status,
            catalog_pages::event_type(session, &definition, &endpoints, sent.as_ref()),
        )
    }

    /// "Send this example": one of the type's examples to one of the tenant's endpoints, as a
    /// test delivery (signed, logged, never retried).
    async fn send_example(
        &self,
        session: &Session,
        name: &str,
        form: &HashMap<String, String>,
    ) -> Answer {
        let outbound = &self.dispatcher.outbound;
        let Ok(event_type) = EventType::parse(&decode_segment(name)) else {
            return error_page(StatusCode::NOT_FOUND, "There is no such event type.");
        };
        let definition = match outbound.event_type(&session.tenant, &event_type).await {
            Ok(definition) => definition,
            Err(CatalogError::Unknown(_)) => {
                return error_page(StatusCode::NOT_FOUND, "There is no such event type.");
            }
            Err(e) => return unavailable(&e.to_string()),
        };
        let example = form
            .get("example")
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| definition.examples.get(i));
        let endpoint = form.get("endpoint").and_then(|e| EndpointId::parse(e).ok());
        let (Some(example), Some(endpoint)) = (example, endpoint) else {
            let why = "Choose one of the examples and one of your endpoints.".to_owned();
            return self
                .event_type(session, name, Some(catalog_pages::Sent::Refused(why)))
                .await;
        };
        let payload = example.to_string();
        let sent = self
            .dispatcher
            .test_endpoint(
                &session.tenant,
                &endpoint,
                Some(&event_type),
                Some(payload.as_bytes()),
            )
            .await;
        match sent {
            Ok(Some(attempt)) => {
                info!(tenant = %session.tenant, endpoint_id = %endpoint, %event_type, "example sent from the portal");
                self.event_type(session, name, Some(catalog_pages::Sent::Attempt(attempt)))
                    .await
            }
            // Another tenant's endpoint is no endpoint.
            Ok(None) => error_page(StatusCode::NOT_FOUND, "There is no such endpoint."),
            Err(e) => unavailable(&e.to_string()),
        }
    }

    async fn add(&self, session: &Session, form: &HashMap<String, String>) -> Answer {
        let change = EndpointChange {
            url: form.get("url").map(|u| u.trim().to_owned()),
            description: form.get("description").cloned(),
            filter: Some(filter_list(form.get("filter"))),
            ..EndpointChange::default()
        };
        match self
            .dispatcher
            .outbound
            .add_endpoint(&session.tenant, change, None)
            .await
        {
            Ok(endpoint) => {
                info!(tenant = %session.tenant, endpoint_id = %endpoint.id, "endpoint added in the portal");
                Answer::Redirect(format!("/portal/endpoints/{}?done=added", endpoint.id))
            }
            Err(e) if e.is_client_error() => {
                self.endpoints(session, None, Some((&e.to_string(), form)))
                    .await
            }
            Err(e) => unavailable(&e.to_string()),
        }
    }

    async fn act(
        &self,
        session: &Session,
        id: &str,
        action: &str,
        form: &HashMap<String, String>,
    ) -> Answer {
        let Ok(id) = EndpointId::parse(id) else {
            return error_page(StatusCode::NOT_FOUND, "There is no such endpoint.");
        };
        let tenant = &session.tenant;
        let outbound = &self.dispatcher.outbound;
        let done = |code: &str| Answer::Redirect(format!("/portal/endpoints/{id}?done={code}"));
        let result: Result<Answer, AdminError> = match action {
            "update" => {
                let change = EndpointChange {
                    url: form.get("url").map(|u| u.trim().to_owned()),
                    description: form.get("description").cloned(),
                    filter: Some(filter_list(form.get("filter"))),
                    ..EndpointChange::default()
                };
                match outbound.update_endpoint(tenant, &id, change).await {
                    Ok(_) => Ok(done("updated")),
                    Err(e)
                        if e.is_client_error() && !matches!(e, AdminError::UnknownEndpoint(_)) =>
                    {
                        return self
                            .endpoint(
                                session,
                                id.as_str(),
                                None,
                                Some(pages::Extra::Refused(e.to_string(), form.clone())),
                            )
                            .await;
                    }
                    Err(e) => Err(e),
                }
            }
            "enable" | "disable" => outbound
                .set_enabled(tenant, &id, action == "enable")
                .await
                .map(|_| {
                    done(if action == "enable" {
                        "enabled"
                    } else {
                        "disabled"
                    })
                }),
            "rotate" | "reveal" => {
                let endpoint = if action == "rotate" {
                    outbound.rotate_secret(tenant, &id, None).await
                } else {
                    match outbound.store.endpoint_with_secrets(tenant, &id).await {
                        Ok(found) => found.ok_or_else(|| AdminError::UnknownEndpoint(id.clone())),
                        Err(e) => Err(e.into()),
                    }
                };
                match endpoint {
                    Ok(endpoint) => {
                        info!(%tenant, endpoint_id = %id, action, "endpoint secret shown in the portal");
                        let secret = endpoint
                            .secrets
                            .map(|s| s.current.expose().to_owned())
                            .unwrap_or_default();
                        let headers = endpoint
                            .headers
                            .opened()
                            .into_iter()
                            .flat_map(CustomHeaders::iter)
                            .map(|(n, v)| (n.to_owned(), v.to_owned()))
                            .collect();
                        let notice = (action == "rotate").then_some(Notice::Rotated);
                        return self
                            .endpoint(
                                session,
                                id.as_str(),
                                notice,
                                Some(pages::Extra::Secret { secret, headers }),
                            )
                            .await;
                    }
                    Err(e) => Err(e),
                }
            }
            "test" => match self.dispatcher.test_endpoint(tenant, &id, None, None).await {
                Ok(Some(attempt)) => {
                    return self
                        .endpoint(
                            session,
                            id.as_str(),
                            None,
                            Some(pages::Extra::Tested(attempt)),
                        )
                        .await;
                }
                Ok(None) => Err(AdminError::UnknownEndpoint(id.clone())),
                Err(e) => Err(e.into()),
            },
            "resend" => {
                let Some(message) = form
                    .get("message_id")
                    .and_then(|m| MessageId::parse(m).ok())
                else {
                    return error_page(StatusCode::BAD_REQUEST, "That is not a message id.");
                };
                match outbound.resend(tenant, &message, Some(&id), false).await {
                    Ok(_) => Ok(done("resent")),
                    Err(e) => {
                        return error_page(StatusCode::BAD_REQUEST, &e.to_string());
                    }
                }
            }
            // Dead deliveries since a time, sent again with a fresh schedule: a dry run first
            // (what would go), then the same form with `confirm`.
            "recover" => {
                let Some(hours) = form
                    .get("since_hours")
                    .and_then(|h| h.parse::<u64>().ok())
                    .filter(|h| RECOVER_HOURS.contains(h))
                else {
                    return error_page(StatusCode::BAD_REQUEST, "Choose how far back to look.");
                };
                let since = outbound
                    .clock
                    .now()
                    .checked_sub(Duration::from_secs(hours * 3_600))
                    .unwrap_or(std::time::UNIX_EPOCH);
                let dry_run = form.get("confirm").is_none_or(|c| c != "yes");
                match outbound.recover_failed(tenant, &id, since, dry_run).await {
                    Ok(report) => {
                        if !dry_run {
                            info!(%tenant, endpoint_id = %id, hours, requeued = report.requeued, "failed deliveries recovered from the portal");
                        }
                        let extra = pages::Extra::Recovery { hours, report };
                        return self.endpoint(session, id.as_str(), None, Some(extra)).await;
                    }
                    Err(RecoveryError::UnknownEndpoint(_)) => {
                        Err(AdminError::UnknownEndpoint(id.clone()))
                    }
                    Err(e) => return unavailable(&e.to_string()),
                }
            }
            _ => return error_page(StatusCode::NOT_FOUND, "There is no such action."),
        };
        match result {
            Ok(answer) => answer,
            Err(AdminError::UnknownEndpoint(_)) => {
                error_page(StatusCode::NOT_FOUND, "There is no such endpoint.")
            }
            Err(e) if e.is_client_error() => error_page(StatusCode::BAD_REQUEST, &e.to_string()),
            Err(e) => unavailable(&e.to_string()),
        }
    }
}

fn unavailable(detail: &str) -> Answer {
    warn!(error = detail, "portal dependency unavailable");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The portal cannot reach its storage right now. Try again in a moment.",
    )
}

/// Comma- or newline-separated patterns; blank means every type.
fn filter_list(raw: Option<&String>) -> Vec<String> {
    raw.map(|raw| {
        raw.split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// A percent-encoded path segment, decoded (event ids may hold `/`, `?` or `#`).
fn decode_segment(segment: &str) -> String {
    // `+` stays `+` in a path; form decoding would make it a space.
    let escaped = segment.replace('+', "%2B");
    form_urlencoded::parse(format!("s={escaped}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// A value made safe to put in a path segment or a query.
pub(crate) fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn query(request: &Request) -> HashMap<String, String> {
    request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn read_form(request: &Request) -> Result<HashMap<String, String>, Answer> {
    let body: &[u8] = match request.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if body.len() > MAX_FORM_BYTES {
        return Err(error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "That form is too large.",
        ));
    }
    Ok(form_urlencoded::parse(body).into_owned().collect())
}

fn cookie(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// Headers every page carries: nothing cached, nothing framed, no script or style from
/// anywhere but the page itself, and no referrer (a link's token must not leak onwards).
fn respond(answer: Answer) -> Response<Body> {
    let (status, body, location, set_cookie) = match answer {
        Answer::Page(status, html) => (status, html, None, None),
        Answer::Redirect(to) => (StatusCode::SEE_OTHER, String::new(), Some(to), None),
        Answer::SignedIn {
            session_id,
            max_age,
            to,
        } => {
            let cookie = format!(
                "{COOKIE}={}; Path=/portal; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
                session_id,
                max_age.as_secs()
            );
            (StatusCode::SEE_OTHER, String::new(), Some(to), Some(cookie))
        }
        Answer::OpenPortal { token, check } => (
            StatusCode::OK,
            pages::open_portal(&token, &check).into_string(),
            None,
            Some(format!(
                "{LOGIN_COOKIE}={check}; Path=/portal/login; Max-Age=600; HttpOnly; Secure; SameSite=Strict"
            )),
        ),
        Answer::SignedOut => (
            StatusCode::OK,
            pages::signed_out().into_string(),
            None,
            Some(format!(
                "{COOKIE}=; Path=/portal; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
            )),
        ),
    };
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Some(to) = location.and_then(|to| HeaderValue::from_str(&to).ok()) {
        headers.insert(header::LOCATION, to);
    }
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests;

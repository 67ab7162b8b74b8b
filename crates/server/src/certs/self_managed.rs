//! Self-managed TLS as a pure decision: given what the Secret holds, what the
//! webhook configuration publishes as caBundle, and the time, say what to
//! write and what to serve. No I/O: `certs::kube` reads, calls [`plan`],
//! writes, and reads again when a write loses a race.
//!
//! Every renewal makes a new CA and a new serving certificate; the CA key is
//! thrown away once it has signed (so the Secret never holds a key that can
//! sign). The rotation keeps the API server able to reach every replica:
//!
//! 1. renewal due (`renew_before` ahead of expiry): the new certificate goes to
//!    `next.crt`/`next.key`, the new CA is put first in `ca.crt`, the old CA
//!    stays; replicas keep serving `tls.crt`; the caBundle is patched to both;
//! 2. once every webhook publishes both CAs and `switch_delay` has passed since
//!    the new certificate was issued (time for every API server to load the new
//!    configuration), `next.*` is promoted to `tls.*`: replicas switch;
//! 3. when the old CA expires (with its certificate: in self-managed mode a CA
//!    lives exactly as long as the one certificate it signs), it leaves
//!    `ca.crt` and the caBundle.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;

use super::{BACKDATE, CertBundle, generate_at};

/// Keys of the Secret (type kubernetes.io/tls, plus the pending certificate).
pub mod keys {
    /// The serving certificate every replica serves.
    pub const TLS_CRT: &str = "tls.crt";
    pub const TLS_KEY: &str = "tls.key";
    /// Every CA the API server must trust: newest first.
    pub const CA_CRT: &str = "ca.crt";
    /// The renewed certificate, waiting for its CA to be published.
    pub const NEXT_CRT: &str = "next.crt";
    pub const NEXT_KEY: &str = "next.key";
}

/// The Secret's `data`, decoded.
pub type SecretData = BTreeMap<String, Vec<u8>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// DNS names the serving certificate must carry.
    pub names: Vec<String>,
    /// Lifetime of a serving certificate (and of the CA that signs it).
    pub validity: Duration,
    /// Start a renewal this long before the serving certificate expires.
    pub renew_before: Duration,
    /// How long after a renewal started replicas may switch to the new
    /// certificate (provided its CA is published by then).
    pub switch_delay: Duration,
}

impl Policy {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.renew_before >= self.validity {
            anyhow::bail!(
                "the renewal margin ({}) must be shorter than the certificate validity ({}): \
                 fix --cert-renew-before or --cert-validity",
                humantime::format_duration(self.renew_before),
                humantime::format_duration(self.validity)
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretWrite {
    Create(SecretData),
    /// Replace the data of the Secret that was read (its resourceVersion guards the write).
    Update(SecretData),
}

/// What happened, for the logs and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Unchanged,
    Created,
    /// The Secret could not be used as it was (reason given); replaced at once.
    Replaced(String),
    RenewalStarted,
    Switched,
    OldCaDropped,
}

impl Step {
    /// The step as the log line names it (`step=renewal-started`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Step::Unchanged => "unchanged",
            Step::Created => "created",
            Step::Replaced(_) => "replaced",
            Step::RenewalStarted => "renewal-started",
            Step::Switched => "switched",
            Step::OldCaDropped => "old-ca-dropped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPlan {
    pub step: Step,
    pub secret: Option<SecretWrite>,
    /// The caBundle to patch into every webhook, when one of them differs.
    pub ca_bundle: Option<Vec<u8>>,
    /// What this replica serves once the Secret write (if any) succeeded.
    pub serve: CertBundle,
}

/// Decide. `published` is the caBundle of each webhook of the configuration
/// (None: not set), empty when the configuration does not exist.
pub fn plan(
    secret: Option<&SecretData>,
    published: &[Option<Vec<u8>>],
    now: OffsetDateTime,
    policy: &Policy,
) -> anyhow::Result<CertPlan> {
    let (step, state) = match secret {
        None => (Step::Created, State::fresh(now, policy)?),
        Some(data) => match State::read(data, now, policy) {
            Ok(state) => advance(state, published, now, policy)?,
            Err(reason) => (Step::Replaced(reason), State::fresh(now, policy)?),
        },
    };
    let data = state.to_data();
    let secret_write = match (&step, secret) {
        (Step::Unchanged, _) => None,
        (_, None) => Some(SecretWrite::Create(data)),
        (_, Some(_)) => Some(SecretWrite::Update(data)),
    };
    let bundle = state.trust_pem();
    let ca_bundle = published.iter().any(|p| p.as_deref() != Some(bundle.as_slice())).then(|| bundle.clone());
    let serve = CertBundle {
        ca_pem: String::from_utf8_lossy(&bundle).into_owned(),
        cert_pem: state.current.cert_pem.clone(),
        key_pem: state.current.key_pem.clone(),
    };
    Ok(CertPlan { step, secret: secret_write, ca_bundle, serve })
}

/// The next state of a readable Secret.
fn advance(
    mut state: State,
    published: &[Option<Vec<u8>>],
    now: OffsetDateTime,
    policy: &Policy,
) -> anyhow::Result<(Step, State)> {
    let before = state.trust.len();
    state.trust.retain(|ca| ca.not_after > now);
    if state.trust.is_empty() {
        return Ok((Step::Replaced(format!("every CA in {} has expired", keys::CA_CRT)), State::fresh(now, policy)?));
    }
    let dropped = state.trust.len() < before;
    if let Some(next) = state.next.take() {
        let switch_at = next.not_before + BACKDATE + policy.switch_delay;
        if now >= switch_at && all_publish(published, &state.trust) {
            state.current = next;
            return Ok((Step::Switched, state));
        }
        state.next = Some(next);
    } else if now >= state.current.not_after - policy.renew_before {
        let fresh = State::fresh(now, policy)?;
        state.trust.splice(0..0, fresh.trust);
        state.next = Some(fresh.current);
        return Ok((Step::RenewalStarted, state));
    }
    Ok((if dropped { Step::OldCaDropped } else { Step::Unchanged }, state))
}

/// True when every webhook's caBundle holds every CA in `trust`. With no
/// webhook configuration, nothing can be published, and waiting would stall
/// the renewal forever: switch.
fn all_publish(published: &[Option<Vec<u8>>], trust: &[Ca]) -> bool {
    published.iter().all(|bundle| {
        let ders = bundle.as_deref().map(pem_certificates).unwrap_or_default();
        trust.iter().all(|ca| ders.contains(&ca.der))
    })
}

struct State {
    current: Leaf,
    next: Option<Leaf>,
    /// Newest first.
    trust: Vec<Ca>,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

struct Ca {
    der: Vec<u8>,
    not_after: OffsetDateTime,
}

impl State {
    fn fresh(now: OffsetDateTime, policy: &Policy) -> anyhow::Result<State> {
        let bundle = generate_at(&policy.names, now, policy.validity, policy.validity)?;
        let cas = pem_certificates(bundle.ca_pem.as_bytes());
        let [ca_der] = <[Vec<u8>; 1]>::try_from(cas).map_err(|_| anyhow::anyhow!("rcgen wrote no single CA"))?;
        let ca = Ca { not_after: validity(&ca_der).context("the generated CA")?.1, der: ca_der };
        let current = Leaf::read(bundle.cert_pem.as_bytes(), bundle.key_pem.as_bytes(), &[])
            .context("the generated serving certificate")?;
        Ok(State { current, next: None, trust: vec![ca] })
    }

    /// A usable state, or why the Secret must be replaced right away (no
    /// overlap is possible: the API server cannot be reaching us with it).
    fn read(data: &SecretData, now: OffsetDateTime, policy: &Policy) -> Result<State, String> {
        let field = |key: &str| data.get(key).map(Vec::as_slice).ok_or_else(|| format!("it has no {key}"));
        let current = Leaf::read(field(keys::TLS_CRT)?, field(keys::TLS_KEY)?, &policy.names)
            .map_err(|e| format!("{}: {e:#}", keys::TLS_CRT))?;
        if current.not_after <= now {
            return Err(format!("{} expired at {}", keys::TLS_CRT, current.not_after));
        }
        let mut trust = Vec::new();
        for der in pem_certificates(field(keys::CA_CRT)?) {
            let not_after = validity(&der).map_err(|e| format!("{}: {e:#}", keys::CA_CRT))?.1;
            trust.push(Ca { der, not_after });
        }
        if trust.is_empty() {
            return Err(format!("{} holds no certificate", keys::CA_CRT));
        }
        // A broken or stale pending certificate is dropped; the renewal starts over.
        let next = match (data.get(keys::NEXT_CRT), data.get(keys::NEXT_KEY)) {
            (Some(cert), Some(key)) => Leaf::read(cert, key, &policy.names).ok().filter(|next| next.not_after > now),
            _ => None,
        };
        Ok(State { current, next, trust })
    }

    fn trust_pem(&self) -> Vec<u8> {
        self.trust.iter().map(|ca| pem_encode(&ca.der)).collect::<String>().into_bytes()
    }

    fn to_data(&self) -> SecretData {
        let mut data = SecretData::new();
        data.insert(keys::TLS_CRT.into(), self.current.cert_pem.clone().into_bytes());
        data.insert(keys::TLS_KEY.into(), self.current.key_pem.clone().into_bytes());
        data.insert(keys::CA_CRT.into(), self.trust_pem());
        if let Some(next) = &self.next {
            data.insert(keys::NEXT_CRT.into(), next.cert_pem.clone().into_bytes());
            data.insert(keys::NEXT_KEY.into(), next.key_pem.clone().into_bytes());
        }
        data
    }
}

impl Leaf {
    /// The certificate and key, checked to name every one of `names`.
    fn read(cert_pem: &[u8], key_pem: &[u8], names: &[String]) -> anyhow::Result<Leaf> {
        let cert_pem = String::from_utf8(cert_pem.to_vec()).context("not UTF-8")?;
        let key_pem = String::from_utf8(key_pem.to_vec()).context("the key is not UTF-8")?;
        rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("no PEM private key")?;
        let der = pem_certificates(cert_pem.as_bytes()).into_iter().next().context("no PEM certificate")?;
        let (not_before, not_after) = validity(&der)?;
        let missing: Vec<&String> = names.iter().filter(|name| !dns_names(&der).contains(name)).collect();
        if !missing.is_empty() {
            anyhow::bail!("it does not name {missing:?}");
        }
        Ok(Leaf { cert_pem, key_pem, not_before, not_after })
    }
}

/// The DER certificates of a PEM bundle (anything else in it is ignored).
pub fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).map(|der| der.to_vec()).collect()
}

fn pem_encode(der: &[u8]) -> String {
    let base64 = base64_simd::STANDARD.encode_to_string(der);
    let lines: Vec<&str> = base64.as_bytes().chunks(64).filter_map(|chunk| std::str::from_utf8(chunk).ok()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

fn validity(der: &[u8]) -> anyhow::Result<(OffsetDateTime, OffsetDateTime)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).context("not an X.509 certificate")?;
    let validity = cert.validity();
    Ok((validity.not_before.to_datetime(), validity.not_after.to_datetime()))
}

fn dns_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return Vec::new() };
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn policy() -> Policy {
        Policy {
            names: crate::certs::service_dns_names("kube-once", "kube-once"),
            validity: 10 * HOUR,
            renew_before: 2 * HOUR,
            switch_delay: Duration::from_secs(60),
        }
    }

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
    }

    /// The world after a plan's writes succeed.
    struct World {
        secret: Option<SecretData>,
        published: Vec<Option<Vec<u8>>>,
    }

    impl World {
        fn new() -> World {
            World { secret: None, published: vec![None, None] }
        }

        fn step(&mut self, now: OffsetDateTime) -> CertPlan {
            let plan = plan(self.secret.as_ref(), &self.published, now, &policy()).unwrap();
            match &plan.secret {
                Some(SecretWrite::Create(data)) => {
                    assert!(self.secret.is_none(), "create over an existing Secret");
                    self.secret = Some(data.clone());
                }
                Some(SecretWrite::Update(data)) => {
                    assert!(self.secret.is_some(), "update of a missing Secret");
                    self.secret = Some(data.clone());
                }
                None => {}
            }
            if let Some(bundle) = &plan.ca_bundle {
                self.published = vec![Some(bundle.clone()); self.published.len()];
            }
            plan
        }

        fn trusted(&self) -> Vec<Vec<u8>> {
            pem_certificates(self.published[0].as_deref().unwrap())
        }
    }

    fn ca_of(plan: &CertPlan) -> Vec<Vec<u8>> {
        pem_certificates(plan.serve.ca_pem.as_bytes())
    }

    #[test]
    fn no_secret_creates_one_and_publishes_its_ca() {
        let mut world = World::new();
        let plan = world.step(t0());
        assert_eq!(plan.step, Step::Created);
        assert!(matches!(plan.secret, Some(SecretWrite::Create(_))));
        let data = world.secret.as_ref().unwrap();
        assert_eq!(plan.ca_bundle.as_deref(), Some(data[keys::CA_CRT].as_slice()));
        assert_eq!(plan.serve.cert_pem.as_bytes(), data[keys::TLS_CRT].as_slice());
        assert_eq!(world.trusted().len(), 1);
    }

    #[test]
    fn a_current_secret_and_bundle_need_nothing() {
        let mut world = World::new();
        let first = world.step(t0());
        let again = world.step(t0() + HOUR);
        assert_eq!(again.step, Step::Unchanged);
        assert_eq!((again.secret, again.ca_bundle), (None, None));
        assert_eq!(again.serve, first.serve);
    }

    #[test]
    fn a_bundle_that_differs_in_one_webhook_is_patched() {
        let mut world = World::new();
        world.step(t0());
        world.published[1] = None;
        let plan = world.step(t0());
        assert_eq!(plan.step, Step::Unchanged);
        assert_eq!(plan.ca_bundle, world.published[0]);
    }

    #[test]
    fn renewal_publishes_the_new_ca_before_switching_then_drops_the_old_one() {
        let mut world = World::new();
        let first = world.step(t0());
        let old_ca = ca_of(&first);

        // Before the renewal margin: nothing.
        assert_eq!(world.step(t0() + 7 * HOUR).step, Step::Unchanged);

        // Renewal: new CA published first, old CA kept, still serving the old certificate.
        let renewing = world.step(t0() + 8 * HOUR);
        assert_eq!(renewing.step, Step::RenewalStarted);
        assert_eq!(renewing.serve.cert_pem, first.serve.cert_pem);
        let trusted = world.trusted();
        assert_eq!(trusted.len(), 2);
        assert_eq!(trusted[1], old_ca[0]);
        let new_ca = trusted[0].clone();
        assert!(world.secret.as_ref().unwrap().contains_key(keys::NEXT_CRT));

        // Within the switch delay: still the old certificate.
        let waiting = world.step(t0() + 8 * HOUR + Duration::from_secs(30));
        assert_eq!(waiting.step, Step::Unchanged);
        assert_eq!(waiting.serve.cert_pem, first.serve.cert_pem);

        // After it: the new certificate, both CAs still trusted.
        let switched = world.step(t0() + 8 * HOUR + Duration::from_secs(61));
        assert_eq!(switched.step, Step::Switched);
        assert_ne!(switched.serve.cert_pem, first.serve.cert_pem);
        assert_eq!(world.trusted().len(), 2);
        assert!(!world.secret.as_ref().unwrap().contains_key(keys::NEXT_CRT));

        // The old CA goes when it (and its certificate) expire.
        let dropped = world.step(t0() + 10 * HOUR);
        assert_eq!(dropped.step, Step::OldCaDropped);
        assert_eq!(world.trusted(), vec![new_ca]);
        assert_eq!(dropped.serve.cert_pem, switched.serve.cert_pem);
        assert_eq!(world.step(t0() + 11 * HOUR).step, Step::Unchanged);
    }

    #[test]
    fn no_switch_until_every_webhook_publishes_the_new_ca() {
        let mut world = World::new();
        let first = world.step(t0());
        world.step(t0() + 8 * HOUR);
        // Someone (a helm upgrade) put the old bundle back into one webhook.
        world.published[1] = Some(first.serve.ca_pem.clone().into_bytes());
        let plan = plan(world.secret.as_ref(), &world.published, t0() + 9 * HOUR, &policy()).unwrap();
        assert_eq!(plan.step, Step::Unchanged);
        assert_eq!(plan.serve.cert_pem, first.serve.cert_pem);
        assert!(plan.ca_bundle.is_some(), "the bundle is restored first");
    }

    #[test]
    fn unusable_secrets_are_replaced_at_once() {
        let mut world = World::new();
        world.step(t0());
        let good = world.secret.clone().unwrap();

        let mut without_key = good.clone();
        without_key.remove(keys::TLS_KEY);
        let mut garbage = good.clone();
        garbage.insert(keys::TLS_CRT.into(), b"not a certificate".to_vec());
        let renamed = Policy { names: vec!["other.kube-once.svc".into()], ..policy() };

        for (data, now, policy) in [
            (without_key, t0(), policy()),
            (garbage, t0(), policy()),
            (good.clone(), t0() + 10 * HOUR, policy()),
            (good, t0(), renamed),
        ] {
            let plan = plan(Some(&data), &[None], now, &policy).unwrap();
            assert!(matches!(plan.step, Step::Replaced(_)), "{:?}", plan.step);
            let Some(SecretWrite::Update(new)) = &plan.secret else { panic!("expected an update") };
            assert_eq!(pem_certificates(&new[keys::CA_CRT]).len(), 1);
            assert_eq!(plan.ca_bundle.as_deref(), Some(new[keys::CA_CRT].as_slice()));
        }
    }

    #[test]
    fn without_a_webhook_configuration_nothing_is_patched_and_renewal_still_completes() {
        let policy = policy();
        let created = plan(None, &[], t0(), &policy).unwrap();
        assert_eq!(created.ca_bundle, None);
        let Some(SecretWrite::Create(data)) = created.secret else { panic!("expected a create") };
        let renewing = plan(Some(&data), &[], t0() + 8 * HOUR, &policy).unwrap();
        let Some(SecretWrite::Update(data)) = renewing.secret else { panic!("expected an update") };
        let switched = plan(Some(&data), &[], t0() + 9 * HOUR, &policy).unwrap();
        assert_eq!(switched.step, Step::Switched);
    }

    #[test]
    fn a_renewal_margin_longer_than_the_validity_is_refused() {
        let bad = Policy { renew_before: 10 * HOUR, ..policy() };
        let error = bad.validate().unwrap_err().to_string();
        assert!(error.contains("--cert-renew-before"), "{error}");
    }
}

//! Services (`services:` and their nested `routes:`).

use super::fields::{quote, Ctx, Record};
use super::{
    assign_id, check, claim, id_path, label_of, name_field, route, tags_field, timestamps, Build,
};
use crate::error::FieldPath;
use crate::{Protocol, Service, ServiceTls};
use serde_json::Value;
use uuid::Uuid;

const FIELDS: &[&str] = &[
    "id",
    "name",
    "protocol",
    "host",
    "port",
    "path",
    "url",
    "retries",
    "connect_timeout",
    "write_timeout",
    "read_timeout",
    "enabled",
    "tags",
    "created_at",
    "updated_at",
    "ca_certificates",
    "client_certificate",
    "tls_verify",
    "tls_verify_depth",
    "routes",
    "plugins",
];

/// Kong's upper bound for timeouts (2^31 - 2 ms).
const MAX_TIMEOUT: i64 = 2_147_483_646;
/// Kong's default for timeouts (ms).
const DEFAULT_TIMEOUT: u32 = 60_000;

/// Reads the top-level `services` and the routes nested in them.
pub(super) fn services(b: &mut Build, root: &Record<'_>) {
    let Some(items) = root.array(&mut b.ctx, "services") else {
        return;
    };
    let base = root.at("services");
    for (i, item) in items.iter().enumerate() {
        service(b, item, base.entity(i, label_of(item, "name")));
    }
}

/// `tls_verify`, `tls_verify_depth`, `ca_certificates` and
/// `client_certificate`; the references are checked once every
/// certificate is read ([`check_tls_references`]).
fn service_tls(
    ctx: &mut Ctx,
    rec: &Record<'_>,
    refs: &mut Vec<(FieldPath, TlsReference, Uuid)>,
) -> ServiceTls {
    let mut tls = ServiceTls {
        verify: rec.opt_boolean(ctx, "tls_verify"),
        verify_depth: rec.integer(ctx, "tls_verify_depth", 0, 64).map(|d| d as u8),
        ..ServiceTls::default()
    };
    if let Some(items) = rec.strings(ctx, "ca_certificates") {
        for (path, s) in items {
            match Uuid::try_parse(s) {
                Ok(id) => {
                    refs.push((path, TlsReference::Ca, id));
                    tls.ca_certificates.push(id);
                }
                Err(_) => ctx.err(path, format!("expected a UUID, got {}", quote(s))),
            }
        }
    }
    if let Some(v) = rec.get("client_certificate") {
        let path = rec.at("client_certificate");
        if let Some(r) = route::reference_with(ctx, v, path.clone(), &["id"]) {
            match Uuid::try_parse(&r) {
                Ok(id) => {
                    refs.push((path, TlsReference::Certificate, id));
                    tls.client_certificate = Some(id);
                }
                Err(_) => ctx.err(path, format!("expected a UUID, got {}", quote(&r))),
            }
        }
    }
    tls
}

/// What a service's TLS field points to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TlsReference {
    /// A `ca_certificates` entity.
    Ca,
    /// A `certificates` entity.
    Certificate,
}

/// Reports service TLS references to entities that do not exist.
pub(super) fn check_tls_references(b: &mut Build) {
    for (path, kind, id) in std::mem::take(&mut b.tls_references) {
        let (found, what) = match kind {
            TlsReference::Ca => (b.ca_ids.contains_key(&id), "ca_certificate"),
            TlsReference::Certificate => (b.certificate_ids.contains_key(&id), "certificate"),
        };
        if !found {
            b.ctx.err(path, format!("no {what} with id \"{id}\""));
        }
    }
}

/// Where a service sends traffic: (protocol, host, port, path).
struct Endpoint {
    protocol: Protocol,
    host: String,
    port: u16,
    path: Option<String>,
}

fn service(b: &mut Build, value: &Value, path: FieldPath) {
    let Some(rec) = Record::new(&mut b.ctx, value, path) else {
        return;
    };
    let ctx = &mut b.ctx;
    rec.check_fields(ctx, FIELDS);
    let name = name_field(ctx, &rec);
    let endpoint = endpoint(ctx, &rec);
    let retries = rec
        .integer(ctx, "retries", 0, 32767)
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(5);
    let mut timeout = |key: &str| {
        rec.integer(ctx, key, 1, MAX_TIMEOUT)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(DEFAULT_TIMEOUT)
    };
    let connect_timeout = timeout("connect_timeout");
    let write_timeout = timeout("write_timeout");
    let read_timeout = timeout("read_timeout");
    let enabled = rec.boolean(ctx, "enabled", true);
    let tags = tags_field(ctx, &rec);
    timestamps(ctx, &rec);
    let tls = service_tls(ctx, &rec, &mut b.tls_references);

    let id = assign_id(b, &rec, "services", name.as_deref(), "", value);
    let ctx = &mut b.ctx;
    let mut name_is_new = true;
    if let Some(name) = &name {
        if let Some((_, first)) = b.service_names.get(name) {
            ctx.err(
                rec.at("name"),
                format!("duplicate name {} (already used by {first})", quote(name)),
            );
            name_is_new = false;
        } else {
            b.service_names.insert(name.clone(), (id, rec.path.clone()));
        }
    }
    // A generated id repeats exactly when the name does: reported above.
    if name_is_new || rec.has("id") {
        claim(
            ctx,
            &mut b.service_ids,
            id,
            id_path(&rec),
            &rec.path,
            |first| format!("duplicate id \"{id}\" (already used by {first})"),
        );
    }

    b.config.services.push(Service {
        id,
        name,
        protocol: endpoint.protocol,
        host: endpoint.host,
        port: endpoint.port,
        path: endpoint.path,
        retries,
        connect_timeout,
        write_timeout,
        read_timeout,
        enabled,
        tags,
        tls,
    });

    if let Some(routes) = rec.array(&mut b.ctx, "routes") {
        let base = rec.at("routes");
        for (j, r) in routes.iter().enumerate() {
            route::route(b, r, base.entity(j, label_of(r, "name")), Some(id));
        }
    }
    super::plugin::nested(b, &rec, super::plugin::Parent::Service(id));
}

/// Reads `url`, or `protocol`/`host`/`port`/`path`, with Kong's defaults.
fn endpoint(ctx: &mut Ctx, rec: &Record<'_>) -> Endpoint {
    let mut out = Endpoint {
        protocol: Protocol::Http,
        host: String::new(),
        port: 80,
        path: None,
    };
    let parts: Vec<String> = ["protocol", "host", "port", "path"]
        .into_iter()
        .filter(|k| rec.has(k))
        .map(|k| format!("'{k}'"))
        .collect();
    if rec.has("url") {
        if !parts.is_empty() {
            ctx.err(
                rec.at("url"),
                format!("cannot set 'url' together with {}", parts.join(", ")),
            );
        }
        if let Some(url) = rec.string(ctx, "url") {
            match parse_url(url) {
                Ok(e) => out = e,
                Err(msg) => ctx.err(rec.at("url"), msg),
            }
        }
        return out;
    }

    if let Some(p) = rec.string(ctx, "protocol") {
        match check::protocol(p) {
            Ok(p) => out.protocol = p,
            Err(msg) => ctx.err(rec.at("protocol"), msg),
        }
    }
    match rec.string(ctx, "host") {
        Some(h) => match check::host(h) {
            Ok(h) => out.host = h,
            Err(msg) => ctx.err(rec.at("host"), msg),
        },
        None if !rec.has("host") => ctx.err(rec.at("host"), "required field missing"),
        None => {}
    }
    if let Some(port) = rec.integer(ctx, "port", 0, 65535) {
        out.port = u16::try_from(port).unwrap_or(80);
    }
    if let Some(p) = rec.string(ctx, "path") {
        if let Err(msg) = check::path(p) {
            ctx.err(rec.at("path"), msg);
        } else if is_grpc(out.protocol) {
            ctx.err(
                rec.at("path"),
                "must be null when 'protocol' is 'grpc' or 'grpcs'",
            );
        }
        out.path = Some(p.to_owned());
    }
    out
}

fn is_grpc(p: Protocol) -> bool {
    matches!(p, Protocol::Grpc | Protocol::Grpcs)
}

/// Parses the `url` shorthand: `scheme://host[:port][/path]`; the port
/// defaults to 80 or 443 by scheme.
fn parse_url(s: &str) -> Result<Endpoint, String> {
    let invalid = |why: &str| format!("invalid url {}: {why}", quote(s));
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(invalid("expected scheme://host[:port][/path]"));
    };
    let protocol = check::protocol(&scheme.to_ascii_lowercase())?;
    if rest.contains(['?', '#']) {
        return Err(invalid("a query string or fragment is not allowed"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    if authority.contains('@') {
        return Err(invalid("user information is not allowed"));
    }
    if authority.is_empty() {
        return Err(invalid("missing host"));
    }
    let (host, port) = check::host_and_port(authority).map_err(|e| invalid(&e))?;
    if let Some(p) = path {
        check::path(p).map_err(|e| invalid(&e))?;
        if is_grpc(protocol) {
            return Err(invalid("a grpc or grpcs url must not have a path"));
        }
    }
    Ok(Endpoint {
        protocol,
        host,
        port: port.unwrap_or(protocol.default_port()),
        path: path.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_defaults_the_port_by_scheme() {
        let e = parse_url("https://api.example.com/v1").unwrap();
        assert_eq!(e.protocol, Protocol::Https);
        assert_eq!(e.port, 443);
        assert_eq!(e.path.as_deref(), Some("/v1"));
        let e = parse_url("http://10.0.0.1").unwrap();
        assert_eq!((e.port, e.path), (80, None));
        let e = parse_url("grpcs://[::1]:9000").unwrap();
        assert_eq!(
            (e.protocol, e.host.as_str(), e.port),
            (Protocol::Grpcs, "::1", 9000)
        );
    }

    #[test]
    fn url_rejects_bad_forms() {
        for bad in [
            "example.com",
            "ftp://a.com",
            "http://",
            "http://a.com:99999",
            "http://u@a.com",
            "http://a.com/x?y=1",
            "http://a.com//x",
            "grpc://a.com/x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}

vcl 4.1;

# Skyline edge: a caching, read-only reverse proxy in front of the S3 API.
#
# The one source of both edges: stack/config.py renders it into the embedded
# stack's state dir (render_vcl) and into deploy/varnish/skyline.vcl for
# compose (compose_vcl; tests/deploy checks the file is that rendering).
# Placeholders (each in double braces): S3_HOST and S3_PORT, the S3 API
# server (path-style: /<bucket>/<key>); BUCKET, the bucket the edge serves;
# PURGERS, extra entries of the PURGE ACL (compose: its network).
#
# - Only public objects: GET/HEAD of /<bucket>/manifests/..., /bundles/...
#   and /loader/... (a file, never a "directory"); anything else is a 404
#   here and never reaches the origin (tokens, uploads, listings, policies).
# - The query string is dropped before the lookup and the origin, so no S3
#   sub-resource (?list-type, ?acl, ?policy, ?versions, ?uploads, ...) or
#   response override (?response-content-type=text/html) gets through, and a
#   query cannot bust the cache.
# - PURGE <path> drops the cached object; allowed from loopback (and the PURGERS) only.
# - TTL comes from the origin's Cache-Control (bundles: max-age=31536000,
#   immutable; manifests: a few seconds).
# - Objects with max-age < 60 s get no grace: once expired or purged they are
#   fetched again, never delivered stale.
# - Errors (4xx/5xx) are cached for at most 1 s.

backend s3 {
    .host = "minio";
    .port = "9000";
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
}

acl purgers {
    "127.0.0.0"/8;
    "::1";
    "172.29.0.0"/24;  # may PURGE
    ! "172.29.0.1";  # never PURGEs
}

sub vcl_recv {
    # Path only: S3 treats a query as sub-resources and response overrides.
    set req.url = regsub(req.url, "[?#].*$", "");
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "PURGE is allowed from loopback only"));
        }
        return (purge);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (synth(405, "Method not allowed: the edge is read-only (GET, HEAD)"));
    }
    # The edge's root (the address the startup banner prints): what it serves, not a 404.
    if (req.url ~ "^/(skyline/)?$") {
        return (synth(200, "Skyline edge: serves manifests/, bundles/ and loader/ of the bucket (GET, HEAD); shell pages: the API's /shells"));
    }
    # The three public prefixes, one object each. Refused: dot segments,
    # empty segments, backslashes and percent-encoded '.', '/', '\\' (an
    # origin that decodes or normalises them could be led out of the prefix).
    if (req.url !~ "^/skyline/(manifests|bundles|loader)/[^/]+(/[^/]+)*$"
        || req.url ~ "(^|/)\.\.?(/|$)"
        || req.url ~ "\\"
        || req.url ~ "(?i)%(2e|2f|5c|00)") {
        return (synth(404, "Not found: the edge serves manifests, bundles and the loader only"));
    }
    # Public objects only: never forward credentials or cookies to the origin.
    unset req.http.Authorization;
    unset req.http.Cookie;
    return (hash);
}

sub vcl_hash {
    # One origin: the path alone names the object, whatever Host the client
    # used (127.0.0.1 vs localhost), so a PURGE always hits the cached copy.
    hash_data(req.url);
    return (lookup);
}

sub vcl_purge {
    return (synth(200, "purged"));
}

sub vcl_backend_fetch {
    # Path-style S3: the Host must be the API server's, not the edge's.
    set bereq.http.Host = "minio:9000";
    unset bereq.http.Cookie;
    return (fetch);
}

sub vcl_backend_response {
    unset beresp.http.Set-Cookie;

    if (beresp.status >= 400) {
        set beresp.ttl = 1s;
        set beresp.grace = 0s;
        set beresp.keep = 0s;
        return (deliver);
    }

    if (beresp.http.Cache-Control ~ "(?i)(no-store|no-cache|private)") {
        # Hit-for-miss for a short while: every request goes to the origin.
        set beresp.ttl = 5s;
        set beresp.grace = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }

    if (beresp.ttl < 60s) {
        set beresp.grace = 0s;
        set beresp.keep = 0s;
    }
    return (deliver);
}

sub vcl_backend_error {
    set beresp.http.Content-Type = "text/plain; charset=utf-8";
    set beresp.body = "origin unavailable" + {"
"};
    set beresp.ttl = 0s;
    set beresp.grace = 0s;
    return (deliver);
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.Set-Cookie;
    return (deliver);
}

sub vcl_synth {
    set resp.http.Content-Type = "text/plain; charset=utf-8";
    if (resp.status == 405) {
        set resp.http.Allow = "GET, HEAD, PURGE";
    }
    set resp.body = resp.reason + {"
"};
    return (deliver);
}

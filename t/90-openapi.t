# openapi/openapi.json, the OpenAPI 3.1 document of the admin API:
# - `redocly lint` (the @redocly/cli pinned in openapi/package.json, with
#   openapi/redocly.yaml's recommended ruleset): no error, no warning;
# - Debian's python3-jsonschema (Draft202012Validator): every
#   components/schemas entry is a valid schema, every $ref resolves, every
#   example (a media type's, a parameter's, a schema's `examples`) is valid
#   against its schema, the response schemas are strict (known-bad bodies
#   are refused) and every schema is used;
# - its (path, method) pairs are exactly DESIGN.md's routes, and every
#   operation declares 401 (but /openapi.json), 500 and 503, each response
#   with an application/json schema, errors with the Error schema.
# No nginx runs here; ./build.sh test installs what it needs (npm ci
# --prefix openapi, python3-jsonschema): their absence is a failure.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP ();
use FindBin ();

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

chdir "$FindBin::Bin/.." or BAIL_OUT("chdir $FindBin::Bin/..: $!");

my $doc_file = 'openapi/openapi.json';
my $redocly = 'openapi/node_modules/.bin/redocly';
my $py = '/usr/bin/python3';

BAIL_OUT("t/90 needs $redocly: run `npm ci --prefix openapi` first")
    unless -x $redocly;
BAIL_OUT('t/90 needs /usr/bin/python3 and python3-jsonschema')
    unless -x $py && system("$py -c 'import jsonschema' 2>/dev/null") == 0;

my $doc = eval {
    open(my $fh, '<:raw', $doc_file) or die "$doc_file: $!\n";
    local $/;
    JSON::PP->new->utf8->decode(<$fh>);
};
BAIL_OUT("$doc_file is not JSON: $@") unless $doc;

# --- (a) redocly lint

my $pkg = JSON::PP->new->decode(do {
    open(my $fh, '<', 'openapi/package.json') or die $!; local $/; <$fh>
});
my $pinned = $pkg->{devDependencies}{'@redocly/cli'} // '';
like($pinned, qr/^\d+\.\d+\.\d+$/, "package.json pins \@redocly/cli exactly ($pinned)");

# no telemetry, no update check; Node 20's deprecation box is the CLI's, not the lint's
local $ENV{REDOCLY_TELEMETRY} = 'off';
local $ENV{REDOCLY_SUPPRESS_UPDATE_NOTICE} = 'true';
local $ENV{NO_COLOR} = '1';

my $version = `$redocly --version 2>/dev/null`;
$version =~ s/\s+$//;
is($version, $pinned, "the installed redocly is the pinned one ($pinned)");

my $lint = `$redocly lint $doc_file --config openapi/redocly.yaml 2>&1`;
my $rc = $? >> 8;
utf8::decode($lint);
(my $report = $lint) =~ s/^.*[\x{2550}-\x{256C}].*\n//mg;
is($rc, 0, 'redocly lint: exit 0') or diag $report;
unlike($report, qr/warning/i, 'redocly lint: no warning') or diag $report;
like($report, qr/Your API description is valid/, 'redocly lint: valid')
    or diag $report;

# --- (b) JSON Schema, with Debian's python3-jsonschema

my $checker = <<'PY';
import datetime, json, re, sys
import jsonschema
from jsonschema import Draft202012Validator, RefResolver

doc = json.load(open(sys.argv[1], encoding="utf-8"))
results = []


def res(name, ok, diag=""):
    results.append({"name": name, "ok": bool(ok), "diag": diag})


# t/lib/openapi_check.py's format checker ("date-time" with a check of
# its own: Debian 12 has no rfc3339-validator)
sys.path.insert(0, "t/lib")
from openapi_check import FORMATS as fc


def validator(schema):
    # $ref "#/components/..." is resolved against the whole document
    return Draft202012Validator(schema, resolver=RefResolver("", doc),
                                format_checker=fc)


def errors(schema, value):
    try:
        return ["%s at %s" % (e.message,
                              "/".join(str(p) for p in e.absolute_path))
                for e in validator(schema).iter_errors(value)]
    except Exception as e:
        # a broken schema (an unknown type, an unresolvable $ref)
        return ["the validator failed: %r" % e]


def unescape(t):
    return t.replace("~1", "/").replace("~0", "~")


def deref(ref):
    if not ref.startswith("#/"):
        raise KeyError("not a local ref: " + ref)
    node = doc
    for t in ref[2:].split("/"):
        t = unescape(t)
        node = node[int(t)] if isinstance(node, list) else node[t]
    return node


def esc(k):
    return str(k).replace("~", "~0").replace("/", "~1")


# every components/schemas entry is a 2020-12 schema
schemas = doc.get("components", {}).get("schemas", {})
res("components/schemas is not empty", len(schemas) > 0)
for name, s in schemas.items():
    try:
        Draft202012Validator.check_schema(s)
        res("check_schema components/schemas/%s" % name, True)
    except jsonschema.SchemaError as e:
        res("check_schema components/schemas/%s" % name, False, str(e))

# every $ref resolves; every schema is used (no-unused-components is off)
refs = set()


def collect(node):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str):
            refs.add(r)
        for v in node.values():
            collect(v)
    elif isinstance(node, list):
        for v in node:
            collect(v)


collect(doc)
bad = []
for r in sorted(refs):
    try:
        deref(r)
    except (KeyError, IndexError, ValueError, TypeError):
        bad.append(r)
res("every $ref resolves (%d refs)" % len(refs), not bad, " ".join(bad))
unused = [n for n in schemas if "#/components/schemas/" + esc(n) not in refs]
res("every components/schemas entry is used", not unused, " ".join(unused))

# every example against its schema
checked = []


def check(schema, value, where):
    e = errors(schema, value)
    checked.append(where)
    res("example %s" % where, not e, "; ".join(e))


def walk_schema(s, ptr):
    if not isinstance(s, dict):
        return
    if "examples" in s:
        if isinstance(s["examples"], list):
            for i, v in enumerate(s["examples"]):
                check(s, v, "%s/examples/%d" % (ptr, i))
        else:
            res("%s/examples is an array" % ptr, False)
    if "example" in s:
        check(s, s["example"], ptr + "/example")
    for k in ("properties", "patternProperties", "$defs", "dependentSchemas"):
        for n, sub in (s.get(k) or {}).items():
            walk_schema(sub, "%s/%s/%s" % (ptr, k, esc(n)))
    for k in ("items", "additionalProperties", "unevaluatedProperties",
              "unevaluatedItems", "not", "if", "then", "else", "contains",
              "propertyNames"):
        if isinstance(s.get(k), dict):
            walk_schema(s[k], "%s/%s" % (ptr, k))
    for k in ("allOf", "anyOf", "oneOf", "prefixItems"):
        for i, sub in enumerate(s.get(k) or []):
            walk_schema(sub, "%s/%s/%d" % (ptr, k, i))


def walk(node, ptr):
    if isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, "%s/%d" % (ptr, i))
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("schema"), dict):
        # a media type, a parameter or a header
        sch = node["schema"]
        if "example" in node:
            check(sch, node["example"], ptr + "/example")
        for k, ex in (node.get("examples") or {}).items():
            where = "%s/examples/%s" % (ptr, esc(k))
            if "$ref" in ex:
                ex = deref(ex["$ref"])
            if "value" in ex:
                check(sch, ex["value"], where)
            else:
                res("%s has a value" % where, False, "externalValue is not checked")
        walk_schema(sch, ptr + "/schema")
    for k, v in node.items():
        if k in ("schema", "example", "examples"):
            continue
        if ptr == "#/components" and k == "schemas":
            for n, s in v.items():
                walk_schema(s, "#/components/schemas/" + esc(n))
            continue
        walk(v, "%s/%s" % (ptr, esc(k)))


walk(doc, "#")
res("examples checked: %d" % len(checked), len(checked) >= 40)

# every success response of an operation has an example
for path, item in doc.get("paths", {}).items():
    for method, op in item.items():
        if method not in ("get", "put", "post", "delete", "patch", "head",
                          "options", "trace"):
            continue
        for status, r in op.get("responses", {}).items():
            if not status.startswith("2"):
                continue
            media = (r.get("content") or {}).get("application/json") or {}
            res("%s %s %s has an example" % (method.upper(), path, status),
                "example" in media or media.get("examples"))

# the response schemas are strict where the module is
S = lambda n: {"$ref": "#/components/schemas/" + n}
tok = {"id": "0b7f7a9c-3c1e-4d55-9f1e-0c3d3f0b9a11", "name": "laptop",
       "prefix": "pat_X7bQ", "scopes": [], "createdAt": "2026-11-28T03:20:33.123Z",
       "expiresAt": None, "lastUsedAt": None, "revokedAt": None,
       "status": "active"}
strict = [
    ("Token", dict(tok, extra=1), "an unknown field"),
    ("Token", {k: v for k, v in tok.items() if k != "lastUsedAt"}, "no lastUsedAt"),
    ("Token", dict(tok, expiresAt="2026-11-28T03:20:33Z"), "a time without ms"),
    ("CreateTokenRequest", {"name": "x", "expiresAt": "2026-02-30T00:00:00Z"},
     "a date that does not exist"),
    ("CreateTokenRequest", {"name": "x", "expiresAt": "tomorrow"},
     "an expiresAt that is no date-time"),
    ("Token", dict(tok, id="not-a-uuid"), "a bad id"),
    ("Token", dict(tok, status="gone"), "a bad status"),
    ("Token", dict(tok, scopes=["a b"]), "a scope with a space"),
    ("Token", dict(tok, name=""), "an empty name"),
    ("Token", dict(tok, name="x" * 201), "a 201-character name"),
    ("Token", dict(tok, token="pat_X7bQm2Rk9vTz4LpWc8NdYf3HsJ6gAe0paAv8"),
     "a plaintext in a token object"),
    ("TokenWithSecret", tok, "no plaintext"),
    ("TokenList", {"items": [], "totalCount": "0",
                   "facets": {"status": {"active": 0, "expired": 0, "revoked": 0}}},
     "totalCount as a string"),
    ("TokenList", {"items": [], "totalCount": 0, "facets": {"status": {}}},
     "facets without counts"),
    ("ConfigData", {"data": {"defaultLifetime": None, "maxLifetime": None,
                             "scopesAllowed": None}}, "no maxTokens"),
    ("Error", {"error": "nope", "message": "x"}, "an unknown error code"),
    ("Error", {"error": "internal"}, "no message"),
    ("IntrospectionResponse", {"active": False, "sub": "alice"},
     "an inactive answer with a reason"),
    ("IntrospectionResponse", {"active": True, "sub": "alice"},
     "an active answer without jti"),
]
for name, value, what in strict:
    if name in schemas:
        res("%s refuses %s" % (name, what), errors(S(name), value))
    else:
        res("components/schemas/%s exists" % name, False)
accepted = [
    ("Token", tok, "no rotatedFrom, nulls, no scopes"),
    ("Token", dict(tok, rotatedFrom="5d2e8f41-7a93-4c0b-b6e2-91f0c4a7d3e8"),
     "rotatedFrom"),
    ("Error", {"error": "invalid_request", "message": "bad request"},
     "a code and a message"),
    ("CreateTokenRequest", {"name": "x", "expiresAt": "2026-12-31T23:59:59+01:00",
                            "unknown": True}, "an offset and an unknown field"),
]
for name, value, what in accepted:
    if name in schemas:
        e = errors(S(name), value)
        res("%s accepts %s" % (name, what), not e, "; ".join(e))

json.dump(results, sys.stdout)
PY

my $out = do {
    open(my $ph, '-|', $py, '-c', $checker, $doc_file)
        or BAIL_OUT("$py: $!");
    local $/;
    <$ph>;
};
my $results = eval { JSON::PP->new->decode($out) };
ok($results && @$results, 'the jsonschema checks ran') or diag $out;
for my $r (@{ $results || [] }) {
    ok($r->{ok}, $r->{name}) or diag $r->{diag};
}

# --- (c) the routes of DESIGN.md, and the statuses every operation answers

my @routes = (
    [ '/',                 'post'   ],  # create
    [ '/',                 'get'    ],  # list
    [ '/{id}',             'get'    ],
    [ '/{id}',             'delete' ],  # revoke
    [ '/{id}/rotate',      'post'   ],
    [ '/self',             'get'    ],
    [ '/self',             'delete' ],
    [ '/self/rotate',      'post'   ],
    [ '/config',           'get'    ],
    [ '/openapi.json',     'get'    ],
    [ '/oauth/introspect', 'post'   ],  # auth_pat_introspect, its own location
);
my %methods = map { $_ => 1 } qw(get put post delete options head patch trace);

my @have;
for my $path (sort keys %{ $doc->{paths} || {} }) {
    push @have, "$path $_"
        for grep { $methods{$_} } sort keys %{ $doc->{paths}{$path} };
}
is_deeply(\@have, [ sort map { "$_->[0] $_->[1]" } @routes ],
          '(path, method) pairs: exactly the routes of DESIGN.md');

is_deeply($doc->{servers}, [ { url => '/v1/personal-access-tokens',
                               description => $doc->{servers}[0]{description} } ],
          'servers: the API location');
is($doc->{paths}{'/oauth/introspect'}{servers}[0]{url}, '/',
   'introspection: a server of its own');
is($doc->{openapi}, '3.1.0', 'OpenAPI 3.1.0');
my $release = do { open(my $fh, '<', 'VERSION') or die "VERSION: $!"; local $/; <$fh> };
$release =~ s/\s+$//;
is($doc->{info}{version}, $release, "info.version is the module's VERSION ($release)");

my $mna = $doc->{components}{responses}{MethodNotAllowed};
ok($mna && $mna->{headers}{Allow}
   && $mna->{content}{'application/json'}{schema}{'$ref'} eq '#/components/schemas/Error',
   'components/responses/MethodNotAllowed: Error, with Allow');

sub resolve {
    my ($node) = @_;
    while (ref $node eq 'HASH' && $node->{'$ref'}) {
        my $n = $doc;
        for my $t (split m{/}, substr($node->{'$ref'}, 2)) {
            $t =~ s/~1/\//g;
            $t =~ s/~0/~/g;
            $n = $n->{$t};
        }
        $node = $n;
    }
    return $node;
}

for my $route (@routes) {
    my ($path, $method) = @$route;
    my $op = $doc->{paths}{$path}{$method} or next;
    my $name = uc($method) . " $path";
    my $resp = $op->{responses} || {};

    my @need = ('500', '503');
    push @need, '401' unless $path eq '/openapi.json';
    ok(exists $resp->{$_}, "$name declares $_") for @need;
    ok((grep { /^2/ } keys %$resp), "$name declares a success");

    for my $status (sort keys %$resp) {
        my $r = resolve($resp->{$status});
        my $schema = $r->{content}{'application/json'}{schema};
        ok($schema, "$name $status: an application/json schema");
        if ($status >= 400) {
            is($schema->{'$ref'} // '', '#/components/schemas/Error',
               "$name $status: the Error schema");
        }
    }

    if ($path ne '/openapi.json' && $resp->{503}) {
        ok(resolve($resp->{503})->{headers}{'Retry-After'},
           "$name 503: Retry-After");
    }
    if ($resp->{401}) {
        ok(resolve($resp->{401})->{headers}{'WWW-Authenticate'},
           "$name 401: WWW-Authenticate");
    }
    ok($op->{operationId}, "$name: an operationId");
}

# the list's query parameters, snake_case and their camelCase aliases
my %params = map { my $p = resolve($_); ($p->{name} => $p) }
             @{ $doc->{paths}{'/'}{get}{parameters} || [] };
is_deeply([ sort keys %params ],
          [ sort qw(page_index page_size status search_term scope sort_by
                    sort_direction pageIndex pageSize searchTerm sortBy
                    sortDirection) ],
          'GET /: every query parameter of parse.c, with the aliases');
is_deeply([ map { [ resolve($params{$_}{schema})->{minimum},
                    resolve($params{$_}{schema})->{maximum} ] }
            qw(page_index page_size) ],
          [ [0, 1000000], [1, 100] ], 'GET /: page bounds');

done_testing;

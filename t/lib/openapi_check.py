#!/usr/bin/python3
"""Validate recorded API answers against the OpenAPI document.

usage: openapi_check.py openapi.json records.jsonl

Each record (written by t/lib/PatOpenAPI.pm) is one JSON answer that a
test received: {"kind": "api"|"introspect", "method", "path" (below the
location's prefix), "status", "body"}.  The record's path is matched to
a path template of the document; the answer must be one the operation
documents (its status, else "default"), and its body must validate
against that response's application/json schema.  A method the path does
not have must be a 404 or 405 error; a path the document does not have
must be a 404 or 400 error; either may be a 401 or 403 (the caller is
identified first).  Exit 1 with one line per kind of mismatch (at
most 40).
"""

import datetime
import json
import re
import sys

import jsonschema

# "date-time" needs rfc3339-validator, which Debian 12 does not pull in
FORMATS = jsonschema.FormatChecker()
RFC3339 = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
                     r"(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$")


@FORMATS.checks("date-time", raises=ValueError)
def date_time(s):
    if not isinstance(s, str):
        return True
    if not RFC3339.match(s):
        return False
    datetime.datetime.strptime(s[:19].upper(), "%Y-%m-%dT%H:%M:%S")
    return True

METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


def load_records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def template_regex(template):
    """/{id}/rotate -> ^/[^/]+/rotate/?$ (a trailing slash is the same)"""
    parts = re.split(r"(\{[^}]+\})", template.rstrip("/"))
    rx = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile("^" + rx + "/?$")


def find_path(paths, path):
    """The template matching path; literal segments win over parameters."""
    if path == "":
        path = "/"
    best = None
    for template in paths:
        if template_regex(template).match(path):
            literal = template.count("/") * 100 - template.count("{")
            if best is None or literal > best[0]:
                best = (literal, template)
    return best[1] if best else None


class Checker:
    def __init__(self, doc):
        self.doc = doc
        self.resolver = jsonschema.RefResolver(base_uri="", referrer=doc)
        self.errors = []
        self.checked = 0
        cls = jsonschema.validators.validator_for(
            {"$schema": "https://json-schema.org/draft/2020-12/schema"})
        self.cls = cls
        self.formats = FORMATS

    def deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            _, obj = self.resolver.resolve(obj["$ref"])
        return obj

    def paths_of(self, kind):
        """The document's paths for one kind of location."""
        paths = self.doc.get("paths", {})
        if kind == "introspect":
            return {p: v for p, v in paths.items() if "introspect" in p}
        return {p: v for p, v in paths.items() if "introspect" not in p}

    def validate(self, rec, schema, what):
        validator = self.cls(schema, resolver=self.resolver,
                             format_checker=self.formats)
        errs = sorted(validator.iter_errors(rec["body"]), key=str)
        if errs:
            e = errs[0]
            where = "/".join(str(x) for x in e.absolute_path) or "(body)"
            self.fail(rec, "%s: %s at %s" % (what, e.message, where))

    def fail(self, rec, text):
        body = json.dumps(rec["body"], ensure_ascii=False)
        if len(body) > 160:
            body = body[:160] + "..."
        self.errors.append(("%s %s%s -> %d: %s" % (
            rec["method"], rec["prefix"], rec["path"], rec["status"], text),
            body))

    def response_schema(self, responses, status):
        resp = responses.get(str(status), responses.get("default"))
        if resp is None:
            return None, "status %d is not documented" % status
        resp = self.deref(resp)
        content = resp.get("content", {})
        media = content.get("application/json")
        if media is None or "schema" not in media:
            return None, "status %d is documented without a JSON body" % status
        return media["schema"], None

    def error_schema(self):
        return {"$ref": "#/components/schemas/Error"}

    def check(self, rec):
        self.checked += 1
        method = rec["method"].lower()
        if method == "head":
            return
        if not rec.get("json", 1):
            self.fail(rec, "not JSON (Content-Type %r)" % rec.get("type", ""))
            return
        paths = self.paths_of(rec["kind"])
        # below a location written with a trailing slash, "/v2/tokens/x"
        # was recorded as "x"
        if rec["path"] and not rec["path"].startswith("/"):
            rec["path"] = "/" + rec["path"]
        if rec["kind"] == "introspect":
            template = next(iter(paths), None)
        else:
            template = find_path(paths, rec["path"])

        if template is None:
            # the caller is identified before the route is looked at
            if rec["status"] not in (400, 401, 403, 404):
                self.fail(rec, "no such path in the document, yet not 404")
                return
            self.validate(rec, self.error_schema(), "an unknown path's error")
            return

        item = self.deref(paths[template])
        op = item.get(method)
        if op is None:
            # the caller is identified first (401, 403); then no route (404:
            # openapi.json/rotate is none) or not this method (405)
            if rec["status"] not in (401, 403, 404, 405):
                self.fail(rec, "%s has no %s, yet not 405"
                          % (template, method.upper()))
                return
            self.validate(rec, self.error_schema(), "a refused method's error")
            return

        schema, why = self.response_schema(op.get("responses", {}),
                                           rec["status"])
        if schema is None:
            self.fail(rec, "%s %s: %s" % (method.upper(), template, why))
            return
        self.validate(rec, schema, "%s %s %d" % (method.upper(), template,
                                                 rec["status"]))


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    checker = Checker(doc)
    for rec in load_records(sys.argv[2]):
        checker.check(rec)
    if checker.errors:
        # one line per kind of mismatch, with its count and a first body
        kinds = {}
        for text, body in checker.errors:
            kinds.setdefault(text, [0, body])[0] += 1
        for text, (n, body) in list(kinds.items())[:40]:
            print("%s (%dx); body %s" % (text, n, body))
        print("%d of %d answers do not match openapi/openapi.json"
              % (len(checker.errors), checker.checked))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The OpenAPI 3.1 document of the information service, served at ``/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from schemas import seals
from schemas.contract import ASSIST_QUESTION_MAX

from .assists import KINDS as ASSIST_KINDS
from .questions import KINDS, MAX_LOOKUPS

_ERROR = {"$ref": "#/components/schemas/Refusal"}

# The water registers' lookups: (question kind, route, path parameter, summary, what the parameter is)
WATER_ENTITIES = (
    ("ship", "/v1/ships/{ship_id}", "ship_id", "An operating ship 营运船舶 by its ship identification number",
     "船舶识别号"),
    ("ship_imo", "/v1/ships/by-imo/{imo}", "imo", "An operating ship 营运船舶 by IMO number",
     "IMO编号: 7 digits, the last a check digit, with or without the IMO prefix (400 invalid_imo)"),
    ("ship_mmsi", "/v1/ships/by-mmsi/{mmsi}", "mmsi", "An operating ship 营运船舶 by MMSI",
     "MMSI: 9 digits (400 invalid_mmsi)"),
    ("shipping_enterprise", "/v1/shipping-enterprises/{uscc}", "uscc",
     "A shipping enterprise 航运企业 by USCC, with its ships (not an operator 经营业户 of the same USCC)",
     "统一社会信用代码 (GB 32100; 400 invalid_uscc)"),
    ("port_enterprise", "/v1/port-enterprises/{uscc}", "uscc", "A port enterprise 港口企业 by USCC",
     "统一社会信用代码 (GB 32100; 400 invalid_uscc)"),
    ("waterway_project", "/v1/waterway-projects/{project_code}", "project_code",
     "A water-transport construction project 水运建设项目 by project code", "项目代码 (投资项目统一代码)"),
)
WATER_ROUTES = tuple((kind, path, param) for kind, path, param, _summary, _what in WATER_ENTITIES)


def _refusals(*statuses: int) -> dict[str, Any]:
    reasons = {400: "a malformed identifier or request (rule names the check)",
               401: "no credential, or an unknown or revoked one", 404: "not in the national register",
               413: f"more than {MAX_LOOKUPS} lookups", 429: "over the party's rate",
               503: "the request could not be passed on now; send it again"}
    return {str(s): {"description": reasons[s], "content": {"application/json": {"schema": _ERROR}}}
            for s in statuses}


_QR = {"type": "string", "maxLength": seals.QR_MAX_CHARS, "pattern": f"^{seals.QR_PREFIX}:",
       "description": f"{seals.QR_PREFIX}:<licence_no>:<key_id>:<sealed_at: ms since 1970 UTC>:<SM2 signature, DER, "
                      "unpadded base64url>"}
_VERIFICATION = {"description": "the verdict with its reason and validity, and the seal beside it",
                 "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Verification"}}}}


def _scan_refusals() -> dict[str, Any]:
    refusals = _refusals(400, 401, 404, 429)
    refusals["400"]["description"] = "rule malformed_qr: the payload is not a licence's QR payload (or malformed_body)"
    refusals["404"]["description"] = "rule not_found: the licence the payload names is not in the national register"
    return refusals


def _entity(summary: str, param: str, description: str, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"get": {
        "summary": summary,
        "parameters": [{"name": param, "in": "path", "required": True, "description": description,
                        "schema": {"type": "string", "maxLength": 64}}, *(extra or [])],
        "responses": {"200": {"description": "the current record, its province, version and last change",
                              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Entity"}}}},
                      **_refusals(400, 401, 404, 429)},
    }}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "roadx national information service 全国道路运输信息服务", "version": "1",
                 "description": "Queries, verification and downloads of the national register. Personal "
                                "numbers are in clear only for the caller's own entities."},
        "security": [{"party": []}],
        "paths": {
            "/v1/catalog": {"get": {
                "summary": "The data-resource catalog 数据资源目录: registers, fields, publishers, counts",
                "responses": {"200": {"description": "one entry per register"}, **_refusals(401, 429)}}},
            "/v1/operators/{uscc}": _entity("An operator 经营业户 by USCC, with its vehicles and licences", "uscc",
                                            "统一社会信用代码 (GB 32100)"),
            "/v1/vehicles/{plate}": _entity(
                "A vehicle 营运车辆 by plate (every colour unless given)", "plate", "号牌号码 (GA 36)",
                [{"name": "color", "in": "query", "required": False, "description": "plate colour code (JT/T 697.7)",
                  "schema": {"type": "integer"}}]),
            "/v1/practitioners/{id_number}": _entity(
                "A practitioner 从业人员 by ID number or its token, with their licences", "id_number",
                "公民身份号码 (GB 11643), or the 32-hex-digit token the store shows"),
            "/v1/licences/{licence_no}": _entity("A licence 电子证照 by number", "licence_no", "证照编号"),
            **{path: _entity(summary, param, what) for _kind, path, param, summary, what in WATER_ENTITIES},
            "/v1/registers/{register}/{key}": _entity(
                "Any declared register's entity by its natural key (a register declared in the configured "
                "directory too); 404 unknown_register for a register not declared", "key",
                "the values of the register's key fields (the catalog's key_fields), joined by ':' (400 malformed_key)",
                [{"name": "register", "in": "path", "required": True, "schema": {"type": "string"},
                  "description": "the register's entity type, as the catalog names it"}]),
            "/v1/licences/{licence_no}/verification": {"get": {
                "summary": "Online verification 在线核验: valid / suspended / revoked / expired / unknown, decided now, "
                           "with the issuing authority's seal 电子印章",
                "parameters": [{"name": "licence_no", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _VERIFICATION, **_refusals(400, 401, 429)}}},
            "/v1/licences/verification": {
                "post": {
                    "summary": "Verify a scanned licence 扫码核验: the QR payload read from a licence, its seal checked "
                               "against the register's content of that licence (a licence changed since the code "
                               "was printed answers seal invalid)",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["qr"], "properties": {"qr": _QR}}}}},
                    "responses": {"200": _VERIFICATION, **_scan_refusals()}},
                "get": {
                    "summary": "The same, the payload given as the query parameter qr (URL-encoded)",
                    "parameters": [{"name": "qr", "in": "query", "required": True, "schema": _QR}],
                    "responses": {"200": _VERIFICATION, **_scan_refusals()}}},
            "/v1/lookups": {"post": {
                "summary": f"Up to {MAX_LOOKUPS} identifiers of mixed kinds, answered in order",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["lookups"], "properties": {"lookups": {
                        "type": "array", "maxItems": MAX_LOOKUPS, "items": {
                            "type": "object", "required": ["kind", "id"],
                            "properties": {"kind": {"enum": list(KINDS)}, "id": {"type": "string"},
                                           "color": {"type": "integer"}}}}}}}}},
                "responses": {"200": {"description": "one answer per lookup: status 200 with the answer, or its refusal"},
                              **_refusals(400, 401, 413, 429)}}},
            "/v1/assists": {"post": {
                "summary": "An assist request 协查: answered at once from the national register, or sent to the "
                           "party that registered the entity (or the one named) as a workflow (receipt, answer, "
                           "deadlines)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["kind", "id", "question"], "properties": {
                        "kind": {"enum": list(ASSIST_KINDS)}, "id": {"type": "string", "maxLength": 64},
                        "color": {"type": "integer"},
                        "question": {"type": "string", "minLength": 1, "maxLength": ASSIST_QUESTION_MAX},
                        "case_no": {"type": "string", "maxLength": 64},
                        "ask_province": {"type": "boolean", "default": False,
                                         "description": "ask the registering party even when the register holds "
                                                        "the entity"},
                        "to_party": {"type": "string", "description": "the party to ask (a province's code, 66, CJ, "
                                                                      "ZJ …), whoever registered the entity"}}}}}},
                "responses": {
                    "200": {"description": "status answered: the entity from the national register"},
                    "202": {"description": "status in_progress: the assist_id (the workflow's correlation id), the "
                                           "party asked (to_province) and the responsible region; the receipt and answer come "
                                           "to the asking party's inbound topic"},
                    "404": {"description": "no register holds the entity and its identifier names no party",
                            "content": {"application/json": {"schema": _ERROR}}},
                    **_refusals(400, 401, 429, 503)}}},
            "/v1/downloads": {"get": {
                "summary": "Bulk download 数据下载 of a register's current records, from the analytical store",
                "parameters": [
                    {"name": "register", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "party", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "changed_since", "in": "query", "required": False,
                     "schema": {"type": "string", "format": "date-time"}},
                    {"name": "format", "in": "query", "required": False, "schema": {"enum": ["csv", "xlsx", "parquet"]}},
                    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}}],
                "responses": {"200": {"description": "the file, streamed"}, **_refusals(400, 401, 429)}}},
            "/v1/health": {"get": {"summary": "Ready once the register has caught up", "security": [],
                                   "responses": {"200": {"description": "ready"}, "503": {"description": "catching up"}}}},
            "/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                         "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        },
        "components": {
            "securitySchemes": {"party": {"type": "http", "scheme": "bearer",
                                          "description": "the party's credential (roadx keys issue --party P)"}},
            "schemas": {
                "Refusal": {"type": "object", "required": ["status", "rule", "error"], "properties": {
                    "status": {"type": "integer"}, "rule": {"type": "string"}, "error": {"type": "string"}}},
                "Verification": {"type": "object", "required": ["licence_no", "status"], "properties": {
                    "licence_no": {"type": "string"},
                    "status": {"enum": ["valid", "suspended", "revoked", "expired", "unknown"]},
                    "licence_type": {"type": ["string", "null"]}, "issuing_province": {"type": ["string", "null"]},
                    "issuing_province_name": {"type": ["string", "null"]},
                    "issuer_region_code": {"type": ["string", "null"]},
                    "valid_from": {"type": ["string", "null"], "format": "date"},
                    "valid_until": {"type": ["string", "null"], "format": "date"},
                    "holder": {"type": ["string", "null"]}, "register_status": {"type": ["string", "null"]},
                    "checked_on": {"type": ["string", "null"], "format": "date"}, "reason": {"type": ["string", "null"]},
                    "seal": {"enum": [*seals.VERDICTS, None], "description":
                             "valid; invalid (changed after sealing); unknown_key (not registered, another party's, "
                             "revoked or expired when sealed); unsealed (issued before sealing began: a warning); "
                             "null when the licence is unknown"},
                    "seal_key_id": {"type": ["string", "null"]},
                    "sealed_at": {"type": ["string", "null"], "format": "date-time"},
                    "seal_reason": {"type": ["string", "null"]}}},
                "Entity": {"type": "object", "properties": {
                    "entity_type": {"type": "string"}, "entity_key": {"type": "string"},
                    "province": {"type": "string"}, "version": {"type": "integer"}, "seq": {"type": "integer"},
                    "last_change": {"type": "string", "format": "date-time"}, "masked": {"type": "boolean"},
                    "record": {"type": "object"}}},
            },
        },
    }

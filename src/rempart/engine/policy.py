"""Declarative policy rules: TOML tables whose `when` expressions compile to fast closures.

A rule:

    [[policy.rules]]
    name = "ip_login_delay"                       # unique; also the default reason code
    when = "failures(ip_login, '10m') >= 3"       # an expression over signals (see SIGNALS)
    action = "delay"                              # allow | delay | step_up | deny
    delay = 2                                     # seconds, for delay
    message = "Too many failed logins; slowed down."
    block = { scope = "ip", ttl = "1h" }          # optional: also add a temporary block entry

Expressions are Python-like (`and`, `or`, `not`, comparisons, `in` over a literal list,
arithmetic) but only the names below are allowed; they are checked and compiled once at load,
so a typo fails at start with the rule's name instead of at the first login.
"""

from __future__ import annotations

import ast
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rempart.bounds import OutOfBounds, duration
from rempart.config import ConfigError, EngineSettings
from rempart.engine.families import Peers, rule_families
from rempart.engine.windows import FAILURES, REJECTS, REPORTS, UNFAMILIAR, UNKNOWN
from rempart.model import Action

# Key families a counter function can be applied to.
FAMILIES = rule_families()
SKETCH_FAMILIES = rule_families(peers=Peers.LOGINS)
USER_FAMILIES = rule_families(users=True)

# function name -> (signals method, kind or sketch, allowed families, window kind)
COUNTERS = {
    "attempts": REPORTS,
    "failures": FAILURES,
    "unknown_failures": UNKNOWN,
    "rejects": REJECTS,
    "unfamiliar_failures": UNFAMILIAR,
}

SIGNALS: dict[str, str] = {
    "familiar_network": "the account has succeeded from this /24 (IPv4) or /64 (IPv6) recently",
    "familiar_device": "the account has succeeded from this device id recently (web and app "
    "only: an IMAP ID is shared by every user of a mail client and easily copied)",
    "familiar": "familiar_network or familiar_device",
    "usual_network": "familiar_network, from an address with fewer than [exposure] "
    "usual_max_users established users (a home, an office behind one NAT; not a carrier's CGNAT "
    "address, where any of thousands of subscribers may be an attacker), and with fewer than 5 "
    "failing logins and 5 refusals from the address in the hour",
    "known_account": "the account has ever succeeded (in the familiarity memory)",
    "has_device": "the attempt carries a device id or user agent",
    "shared_ip": "many established users log in from this IP (CGNAT, NAT, a webmail fetcher), "
    "or twice as many successful users with at most one failure in four attempts",
    "shared_subnet": "the same for the subnet",
    "leaked_pair": "this exact login + password is in an ingested leak",
    "login_exposed": "this login appears in an ingested leak",
    "account_restricted": "the account's current password is exposed and not yet changed",
    "exposure_grace": "the account is exposed (restricted, or this is a leaked pair) and its "
    "exposure was first seen less than [exposure] grace_days ago (the first ask starts the "
    "clock: put it last in a rule, after the conditions that should start it)",
    "known_fetcher": "the source is a configured fetcher network ([exposure] fetchers), or an "
    "address learned as a fetcher (many accounts for days with few failures, never a web or app "
    "login) that already "
    "fetched for this account and whose last hour is mostly successes",
    "popular_password": "the password is among the most common real passwords",
    "app_password": "the attempt authenticated with an app password valid for this protocol, "
    "or, before Dovecot checked the password, may be one (the account holds one and the "
    "pwhash agrees with it): the answer after the check decides",
    "app_passwords_only": "the account opted into 'mail apps only with app passwords'",
    "v6": "the source is IPv6",
    "tls": "the client connection used TLS",
    "legacy": "the protocol is imap, pop3 or smtp",
    "protocol": "the protocol name: imap, pop3, smtp, web, app, api, other",
    "posture": "the protocol's posture: normal, guarded, strict, closed",
}
FUNCTIONS: dict[str, str] = {
    "attempts(family, window)": "reported attempts in the window",
    "failures(family, window)": "failed attempts (wrong password or unknown login)",
    "unknown_failures(family, window)": "failures the backend reported as unknown logins",
    "rejects(family, window)": "attempts the policy refused",
    "unfamiliar_failures(family, window)": "failures from a network and device the account "
    "has not succeeded from",
    "failed_logins(ip|subnet|wide|asn, window)": "distinct logins that failed from this source",
    "failing_ips(window)": "distinct IPs that failed on this login",
    "successful_users(ip|subnet)": "distinct accounts that succeeded from this source (long window)",
    "established_users(ip|subnet)": "distinct accounts that succeeded from this source, "
    "each from a network already familiar to it (long window)",
}


def parse_duration(text: str | int | float, where: str) -> float:
    """Seconds from "30s", "10m", "2h", "1d" or a number of seconds: finite, not negative, at
    most 10 years (`rempart.bounds.duration`); ConfigError naming `where` otherwise."""
    try:
        return duration(text, where)
    except OutOfBounds as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Block:
    scope: str  # ip | subnet | ip_login | login
    ttl: float


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: str
    action: Action
    delay: float
    code: str
    message: str
    block: Block | None


_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Call,
    ast.List,
    ast.Tuple,
)


class _Compiler(ast.NodeTransformer):
    """Rewrites signal names and calls into attribute/method access on the signals object `s`."""

    def __init__(self, rule: str, engine: EngineSettings) -> None:
        self.rule = rule
        self.engine = engine

    def fail(self, why: str) -> ConfigError:
        return ConfigError(f"[[policy.rules]] {self.rule!r}: {why}")

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if not isinstance(node, _ALLOWED_NODES):
            raise self.fail(f"'{type(node).__name__}' is not allowed in a rule expression")
        return super().generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in SIGNALS:
            return ast.copy_location(
                ast.Attribute(value=ast.Name("s", ast.Load()), attr=node.id, ctx=ast.Load()), node
            )
        if node.id in ("true", "True"):
            return ast.copy_location(ast.Constant(True), node)
        if node.id in ("false", "False"):
            return ast.copy_location(ast.Constant(False), node)
        raise self.fail(f"unknown signal {node.id!r} (known: {', '.join(sorted(SIGNALS))})")

    def _window(self, node: ast.AST, width: int, buckets: int) -> int:
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str | int | float):
            raise self.fail("a window must be a literal such as '10m'")
        seconds = parse_duration(node.value, f"[[policy.rules]] {self.rule!r}")
        span = math.ceil(seconds / width)
        if span < 1 or span > buckets:
            raise self.fail(
                f"window {node.value!r} must be between {width}s and {width * buckets}s "
                "(see [engine] bucket settings)"
            )
        return span

    def _family(self, node: ast.AST, allowed: dict[str, int]) -> int:
        if not isinstance(node, ast.Name) or node.id not in allowed:
            raise self.fail(f"first argument must be one of {', '.join(allowed)}")
        return allowed[node.id]

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.fail("only plain calls of signal functions are allowed")
        name, args, e = node.func.id, node.args, self.engine
        if name in COUNTERS:
            if len(args) != 2:
                raise self.fail(f"{name}(family, window) takes two arguments")
            call = (
                "count",
                [
                    self._family(args[0], FAMILIES),
                    COUNTERS[name],
                    self._window(args[1], e.bucket_seconds, e.buckets),
                ],
            )
        elif name == "failed_logins":
            if len(args) != 2:
                raise self.fail(
                    f"failed_logins({'|'.join(SKETCH_FAMILIES)}, window) takes two arguments"
                )
            call = (
                "failed_logins",
                [
                    self._family(args[0], SKETCH_FAMILIES),
                    self._window(args[1], e.distinct_bucket_seconds, e.distinct_buckets),
                ],
            )
        elif name == "failing_ips":
            if len(args) != 1:
                raise self.fail("failing_ips(window) takes one argument")
            call = (
                "failing_ips",
                [self._window(args[0], e.distinct_bucket_seconds, e.distinct_buckets)],
            )
        elif name in ("established_users", "successful_users"):
            if len(args) != 1:
                raise self.fail(f"{name}({'|'.join(USER_FAMILIES)}) takes one argument")
            call = (name, [self._family(args[0], USER_FAMILIES)])
        else:
            raise self.fail(f"unknown function {name!r}")
        method, values = call
        return ast.copy_location(
            ast.Call(
                func=ast.Attribute(value=ast.Name("s", ast.Load()), attr=method, ctx=ast.Load()),
                args=[ast.Constant(v) for v in values],
                keywords=[],
            ),
            node,
        )


def _expression_tree(rule: str, text: str, engine: EngineSettings) -> ast.expr:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"[[policy.rules]] {rule!r}: cannot parse 'when': {exc.msg}") from None
    compiled = _Compiler(rule, engine).visit(tree)
    assert isinstance(compiled, ast.Expression)  # visiting an Expression returns one
    return compiled.body


def _function(name: str, body: list[ast.stmt], filename: str) -> Callable[[Any], Any]:
    func = ast.FunctionDef(
        name=name,
        args=ast.arguments(
            posonlyargs=[], args=[ast.arg("s")], kwonlyargs=[], kw_defaults=[], defaults=[]
        ),
        body=body,
        decorator_list=[],
        returns=None,
    )
    if sys.version_info >= (3, 12):
        func.type_params = []
    module = ast.Module(body=[func], type_ignores=[])
    ast.fix_missing_locations(module)
    namespace: dict[str, Any] = {"__builtins__": {}}
    # Only expressions the _Compiler checked reach here, and without builtins.
    exec(compile(module, filename, "exec"), namespace)
    function: Callable[[Any], Any] = namespace[name]
    return function


def compile_ruleset(rules: list[Rule], engine: EngineSettings) -> Callable[[Any], list[int]]:
    """All rules as one function returning the indices of the rules that match.

    One call per decision instead of one per rule: the common case (nothing matches) costs a
    single frame.
    """
    matched = ast.Name("matched", ast.Load())
    body: list[ast.stmt] = [
        ast.Assign(
            targets=[ast.Name("matched", ast.Store())], value=ast.List(elts=[], ctx=ast.Load())
        )
    ]
    for index, rule in enumerate(rules):
        test = _expression_tree(rule.name, rule.when, engine)
        append = ast.Expr(
            ast.Call(
                func=ast.Attribute(matched, "append", ast.Load()),
                args=[ast.Constant(index)],
                keywords=[],
            )
        )
        body.append(ast.If(test=test, body=[append], orelse=[]))
    body.append(ast.Return(value=matched))
    return _function("matching_rules", body, "<policy>")


_ACTIONS = {
    "allow": Action.ALLOW,
    "delay": Action.DELAY,
    "step_up": Action.STEP_UP,
    "deny": Action.DENY,
}
_RULE_KEYS = {"name", "when", "action", "delay", "code", "message", "block", "description"}


def compile_rule(table: dict[str, Any], engine: EngineSettings) -> Rule:
    name = table.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"[[policy.rules]] needs a 'name' in snake_case, got {name!r}")
    where = f"[[policy.rules]] {name!r}"
    unknown = set(table) - _RULE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    when = table.get("when")
    if not isinstance(when, str) or not when.strip():
        raise ConfigError(f"{where}: 'when' must be a non-empty expression string")
    action = _ACTIONS.get(str(table.get("action", "")))
    if action is None:
        raise ConfigError(f"{where}: 'action' must be one of {', '.join(_ACTIONS)}")
    delay = parse_duration(table.get("delay", 0), f"{where} delay")
    if action is Action.DELAY and delay <= 0:
        raise ConfigError(f"{where}: a delay rule needs 'delay' > 0")
    block = None
    if "block" in table:
        spec = table["block"]
        if not isinstance(spec, dict) or spec.get("scope") not in (
            "ip",
            "subnet",
            "ip_login",
            "login",
        ):
            raise ConfigError(f"{where}: block needs scope = ip | subnet | ip_login | login")
        block = Block(spec["scope"], parse_duration(spec.get("ttl", "1h"), f"{where} block.ttl"))
        if action is not Action.DENY:
            raise ConfigError(f"{where}: only a deny rule may add a block entry")
    code = table.get("code", name)
    message = table.get("message", "")
    if not isinstance(code, str) or not isinstance(message, str):
        raise ConfigError(f"{where}: code and message must be strings")
    _expression_tree(name, when, engine)  # checked now, so a bad rule fails at load
    return Rule(name, when, action, delay, code, message, block)


def compile_rules(tables: list[dict[str, Any]], engine: EngineSettings) -> list[Rule]:
    rules: list[Rule] = []
    seen: set[str] = set()
    for table in tables:
        rule = compile_rule(table, engine)
        if rule.name in seen:
            # A later rule with the same name replaces the earlier one (operators override
            # shipped defaults by name).
            rules = [r for r in rules if r.name != rule.name]
        seen.add(rule.name)
        rules.append(rule)
    return rules

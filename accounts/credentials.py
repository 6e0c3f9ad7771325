"""API-key authentication on the hot path: one hand-written lookup, and a per-process cache of it that
Redis confirms in the round trip the request makes anyway.

Every API request needs the key's row, its account, its creator and the creator's role. Compiled by the
ORM that one query cost more than the rest of a `GET /leads/{id}`; written once here (columns taken from
the models, values through the ORM's converters, core/db.py) it is a plain round trip.

With Redis, a process also keeps what it looked up, for `LEADBASE_CREDENTIAL_CACHE_SECONDS`, and uses
it only after Redis confirms it is current:

- Every key has a credential epoch in Redis, a random token. A cached key remembers the epoch read
  *before* its row was loaded.
- Anything that can change what a key may do replaces its epoch: the key saved or deleted (revoked,
  scopes or expiry changed), its creator's membership saved or deleted (role changed, member removed),
  its account saved (plan, budget), its creator saved (deactivated), through the services, Django
  admin or anything else that saves models (accounts/signals.py). The epoch is replaced both at once
  and when the transaction commits, so a request that loaded the row between the two cannot keep what
  it read.
- A request with a cached key sends "is the epoch still X?" in the same Redis pipeline as its rate-limit
  hit and its usage record (core/ratelimit.py riders): no database query at all. If the epoch changed,
  expired or vanished (Redis restarted), the key is looked up again before the request goes on, so a
  revocation takes effect on the very next request, in every process.
- Without Redis, while it is unreachable, or for a key not cached yet, the key is looked up in the
  database as before. The cache's lifetime bounds what a lost epoch change (Redis unreachable at the
  moment of a revocation, a row edited by hand in SQL) can cost.

What a request found stale it has already spent from the account's budget (the hit rode in the same
round trip); that is one request's worth, once per change.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from core import ratelimit
from core.db import ModelColumns, hot_row

from . import usage
from .actor import Actor
from .models import Account, ApiKey, Membership, User
from .scopes import effective_scopes

logger = logging.getLogger("leadbase.credentials")

KEY = ModelColumns(ApiKey, "k")
ACCOUNT = ModelColumns(Account, "a")
USER = ModelColumns(User, "u")
_KEY_ACCOUNT = ApiKey._meta.get_field("account")
_KEY_CREATOR = ApiKey._meta.get_field("created_by")
# A key's epoch lives a day; when it expires the next request looks its key up and sets a new one.
EPOCH_TTL_SECONDS = 24 * 3600
CACHE_MAX_ENTRIES = 10_000

# KEYS[1] = the key's epoch; ARGV[1] = a new token, ARGV[2] = TTL. The current token, set if missing.
EPOCH_READ_LUA = """
local current = redis.call('GET', KEYS[1])
if not current then
  current = ARGV[1]
  redis.call('SET', KEYS[1], current, 'EX', ARGV[2])
end
return current
"""
# KEYS[1] = the key's epoch; ARGV[1] = the epoch the cached key was loaded under.
# 1 when it is still current, else {0, the current token or ''}.
EPOCH_CHECK_LUA = """
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then
  return {0, current or ''}
end
return 1
"""
# The same check, then the key's usage record (accounts/usage.py RECORD_LUA) only when it passes:
# KEYS[1..2] and ARGV[1..4] as RECORD_LUA, KEYS[3] = the epoch, ARGV[5] = the expected token.
EPOCH_CHECK_AND_RECORD_LUA = (
    """
local current = redis.call('GET', KEYS[3])
if current ~= ARGV[5] then
  return {0, current or ''}
end
"""
    + usage.RECORD_LUA
)


@dataclass(frozen=True)
class KeyRow:
    """The raw values of one lookup: the key, its account, its creator and the creator's role there."""

    key: tuple
    account: tuple
    user: tuple
    role: str | None

    def instances(self) -> tuple[ApiKey, Account, User]:
        db = connection.alias
        return (
            KEY.instance(KEY.convert(self.key, connection), db),
            ACCOUNT.instance(ACCOUNT.convert(self.account, connection), db),
            USER.instance(USER.convert(self.user, connection), db),
        )

    def actor(self, ip: str | None) -> Actor | None:
        return _actor(*self.instances(), self.role, ip)


def _actor(key: ApiKey, account: Account, user: User, role: str | None, ip: str | None) -> Actor | None:
    """The request's actor, or None when the key is revoked, expired, its creator inactive or no longer a
    member. The instances are the request's own: it may change them without touching the cache."""
    if role is None or not key.is_active or not user.is_active:
        return None
    # The relations' caches set directly: the ids already match, the descriptors' checks would cost more.
    _KEY_ACCOUNT.set_cached_value(key, account)
    _KEY_CREATOR.set_cached_value(key, user)
    return Actor(user=user, account=account, role=role, scopes=effective_scopes(key.scopes, role), api_key=key, ip=ip)


def _lookup_sql() -> str:
    # Only names from the models, quoted by the backend; the one value is a parameter.
    q = connection.ops.quote_name
    columns = f"{KEY.select(connection)}, {ACCOUNT.select(connection)}, {USER.select(connection)}, m.{q('role')}"
    tables = (
        f"{q(ApiKey._meta.db_table)} k "
        f"JOIN {q(Account._meta.db_table)} a ON a.{q('id')} = k.{q('account_id')} "
        f"JOIN {q(User._meta.db_table)} u ON u.{q('id')} = k.{q('created_by_id')} "
        f"LEFT JOIN {q(Membership._meta.db_table)} m "
        f"ON m.{q('account_id')} = k.{q('account_id')} AND m.{q('user_id')} = k.{q('created_by_id')}"
    )
    return f"SELECT {columns} FROM {tables} WHERE k.{q('prefix')} = %s"  # noqa: S608


_sql: dict[str, str] = {}


def load(prefix: str) -> KeyRow | None:
    """One query: the key with this prefix, its account, creator and the creator's role (None: no key)."""
    sql = _sql.get(connection.vendor)
    if sql is None:
        sql = _sql[connection.vendor] = _lookup_sql()
    row = hot_row(connection, sql, [prefix])
    if row is None:
        return None
    k, a = len(KEY), len(KEY) + len(ACCOUNT)
    u = a + len(USER)
    return KeyRow(key=tuple(row[:k]), account=tuple(row[k:a]), user=tuple(row[a:u]), role=row[u])


# --- the per-process cache ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    row: KeyRow
    key_hash: str
    epoch: str
    loaded_at: float
    # Built once from the row; every request gets clones (core/db.py ModelColumns.clone).
    templates: tuple[ApiKey, Account, User]

    def actor(self, ip: str | None) -> Actor | None:
        key, account, user = self.templates
        return _actor(KEY.clone(key), ACCOUNT.clone(account), USER.clone(user), self.row.role, ip)


_cache: dict[str, Entry] = {}
_cache_lock = threading.Lock()


def reset_cache() -> None:
    """Forget every cached key (tests, or after changing settings)."""
    with _cache_lock:
        _cache.clear()


def _cached(prefix: str) -> Entry | None:
    entry = _cache.get(prefix)
    if entry is None:
        return None
    if time.monotonic() - entry.loaded_at >= settings.LEADBASE_CREDENTIAL_CACHE_SECONDS:
        _forget(prefix)
        return None
    return entry


def _remember(prefix: str, entry: Entry) -> None:
    with _cache_lock:
        if len(_cache) >= CACHE_MAX_ENTRIES:
            _cache.clear()  # rare (10k keys in one process); everything is simply looked up again
        _cache[prefix] = entry


def _forget(prefix: str) -> None:
    with _cache_lock:
        _cache.pop(prefix, None)


def caching() -> bool:
    return bool(settings.REDIS_URL) and settings.LEADBASE_CREDENTIAL_CACHE_SECONDS > 0


def epoch_key(prefix: str) -> str:
    return f"{ratelimit.get_limiter().prefix}:credentials:{prefix}"


# --- riders: the Redis commands that travel with the rate-limit hit --------------------------------------


EPOCH_READ = ratelimit.rider_script(EPOCH_READ_LUA)
EPOCH_CHECK = ratelimit.rider_script(EPOCH_CHECK_LUA)
EPOCH_CHECK_AND_RECORD = ratelimit.rider_script(EPOCH_CHECK_AND_RECORD_LUA)
RECORD = ratelimit.rider_script(usage.RECORD_LUA)


class EpochRead:
    """Reads (or starts) the key's epoch before its row is loaded from the database."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.epoch: str | None = None

    def command(self) -> tuple:
        return ("EVALSHA", EPOCH_READ, 1, epoch_key(self.prefix), secrets.token_hex(8), EPOCH_TTL_SECONDS)

    def settle(self, reply) -> None:
        self.epoch = reply.decode() if isinstance(reply, bytes) else str(reply)

    def unavailable(self) -> None:
        self.epoch = None


class EpochCheck:
    """Is the cached key's epoch still current? When it is and usage is batched in Redis, the key's use is
    recorded by the same script (accounts/usage.py); otherwise `record_now` tells the caller to write it."""

    def __init__(self, prefix: str, entry: Entry, ip: str | None):
        self.prefix = prefix
        self.entry = entry
        self.ip = ip
        self.current: bool = False
        self.record_now = True

    def command(self) -> tuple:
        epoch = epoch_key(self.prefix)
        if usage.batched():
            pending, dirty = usage.usage_keys(self.prefix)
            self.record_now = False
            return (
                "EVALSHA",
                EPOCH_CHECK_AND_RECORD,
                3,
                pending,
                dirty,
                epoch,
                time.time_ns() // 1000,
                self.ip or "",
                usage.PENDING_TTL_SECONDS,
                self.prefix,
                self.entry.epoch,
            )
        return ("EVALSHA", EPOCH_CHECK, 1, epoch, self.entry.epoch)

    def settle(self, reply) -> None:
        self.current = reply == 1

    def unavailable(self) -> None:
        self.current = False
        self.record_now = True


class UsageRecord:
    """The key's use, recorded in Redis beside the hit (batched usage) or written to its row."""

    def __init__(self, key: ApiKey, ip: str | None):
        self.key = key
        self.ip = ip

    def command(self) -> tuple:
        pending, dirty = usage.usage_keys(self.key.prefix)
        return (
            "EVALSHA",
            RECORD,
            2,
            pending,
            dirty,
            time.time_ns() // 1000,
            self.ip or "",
            usage.PENDING_TTL_SECONDS,
            self.key.prefix,
        )

    def settle(self, reply) -> None:
        pass

    def unavailable(self) -> None:
        usage.record_use_now(self.key, self.ip)


# --- authentication ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """An authenticated actor and, when the budget was spent with it, the rate-limit decision."""

    actor: Actor
    decision: ratelimit.Decision | None


def _budget(actor: Actor, riders: list, spend: bool) -> ratelimit.Decision | None:
    if spend and settings.LEADBASE_RATE_LIMIT_ENABLED:
        return ratelimit.hit_account(actor.account, riders)
    ratelimit.get_limiter().ride(riders)
    return None


def admit(
    *,
    raw_key: str,
    prefix: str,
    key_hash: str,
    ip: str | None,
    spend: bool,
    read_ahead: Callable[[int], None] | None = None,
) -> Admission | None:
    """Authenticate a well-formed key (its prefix and hash given), record its use, and (`spend`) spend one
    request of its account's budget, in as few round trips as the cache allows. None: unknown, revoked,
    expired, or its creator is inactive or no longer a member.

    `read_ahead(account_id)` is called with the account a cached key names, before the Redis round trip
    that confirms the key (when nothing will use the database before the caller does: usage batched in
    Redis): the caller may send a read for that account meanwhile, and must not use it unless the
    admission returned names the same account."""
    if not caching():
        return _admit_from_database(prefix, key_hash, ip, spend, epoch=None)
    entry = _cached(prefix)
    if entry is not None and not hmac.compare_digest(entry.key_hash, key_hash):
        return None  # a key's hash never changes: a wrong secret for a known prefix costs no query
    if entry is not None:
        actor = entry.actor(ip)
        if actor is not None:
            check = EpochCheck(prefix, entry, ip)
            # Not when the use is written first, on the same connection (usage not batched), nor when the
            # budget was spent a moment ago (a refusal would throw the read away: rate limits protect the database too).
            if (
                read_ahead is not None
                and usage.batched()
                and not (spend and ratelimit.account_refused_lately(actor.account))
            ):
                read_ahead(actor.account.pk)
            decision = _budget(actor, [check], spend)
            if check.current:
                if check.record_now:  # usage is not batched: written to the key's row
                    usage.record_use_now(actor.api_key, ip)
                return Admission(actor, decision)
        _forget(prefix)
    # Not cached, stale or refused locally: read the epoch first, then the row (so a change committed in
    # between leaves this entry stale, never current).
    read = EpochRead(prefix)
    ratelimit.get_limiter().ride([read])
    return _admit_from_database(prefix, key_hash, ip, spend, epoch=read.epoch)


def _admit_from_database(
    prefix: str, key_hash: str, ip: str | None, spend: bool, epoch: str | None
) -> Admission | None:
    row = load(prefix)
    if row is None:
        return None
    key_hash_stored = row.key[KEY.attnames.index("key_hash")]
    if not hmac.compare_digest(key_hash_stored, key_hash):
        return None
    actor = row.actor(ip)
    if actor is None:
        return None
    if epoch is not None:
        _remember(
            prefix,
            Entry(
                row=row, key_hash=key_hash_stored, epoch=epoch, loaded_at=time.monotonic(), templates=row.instances()
            ),
        )
    riders = [UsageRecord(actor.api_key, ip)] if usage.batched() else []
    decision = _budget(actor, riders, spend) if (riders or spend) else None
    if not riders:
        usage.record_use_now(actor.api_key, ip)
    return Admission(actor, decision)


# --- epoch changes -----------------------------------------------------------------------------------------


class EpochChange:
    """Replaces the epochs of these keys with new tokens (one script, one round trip)."""

    def __init__(self, prefixes: list[str]):
        self.prefixes = prefixes

    def command(self) -> tuple:
        return (
            "EVAL",
            "for i, k in ipairs(KEYS) do redis.call('SET', k, ARGV[i], 'EX', ARGV[#ARGV]) end return #KEYS",
            len(self.prefixes),
            *[epoch_key(p) for p in self.prefixes],
            *[secrets.token_hex(8) for _ in self.prefixes],
            EPOCH_TTL_SECONDS,
        )

    def settle(self, reply) -> None:
        pass

    def unavailable(self) -> None:
        logger.error(
            "%d API key(s) changed while Redis was unavailable; other processes may use what they cached for "
            "up to %s s",
            len(self.prefixes),
            settings.LEADBASE_CREDENTIAL_CACHE_SECONDS,
        )


def publishing() -> bool:
    """Changes are published whenever there is a Redis, even by a process that caches nothing itself
    (an admin, a worker, a shell with LEADBASE_CREDENTIAL_CACHE_SECONDS=0): others may cache."""
    return bool(settings.REDIS_URL)


def credentials_changed(prefixes) -> None:
    """Every process must look these keys up again: now, and once the transaction commits. Sent past
    the limiter's circuit breaker (a change must not be skipped because an earlier call timed out);
    a change that still cannot reach Redis is logged, and caches hold it for at most their lifetime."""
    prefixes = sorted({p for p in prefixes if p})
    if not prefixes or not publishing():
        return
    for prefix in prefixes:
        _forget(prefix)
    ratelimit.get_limiter().ride([EpochChange(prefixes)], force=True)
    transaction.on_commit(lambda: ratelimit.get_limiter().ride([EpochChange(prefixes)], force=True))

"""The lead: one person or company a sales team may contact, owned by one account."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower

from core.keyset import nullable_sort_expressions
from core.models import AccountScopedModel

from .limits import NOTE_MAX_LENGTH


class LeadStatus(models.TextChoices):
    NEW = "new", "New"
    CONTACTED = "contacted", "Contacted"
    QUALIFIED = "qualified", "Qualified"
    UNQUALIFIED = "unqualified", "Unqualified"
    CONVERTED = "converted", "Converted"
    LOST = "lost", "Lost"


class Lead(AccountScopedModel):
    """A lead. Identity within an account is its normalized email, else its external_id;
    both are unique per account by database constraint, so concurrent creates make one lead."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: every index of the table leads with the account. Each index is paid by
    # every insert (a batch of 500, an import, a million-row load), so none is kept that another serves.
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+", db_index=False)
    # NULL, not "", means "no email": the partial unique constraint then ignores it (§4.1 says null).
    email = models.EmailField(max_length=254, null=True, blank=True)  # noqa: DJ001
    first_name = models.CharField(max_length=100, blank=True, default="")
    last_name = models.CharField(max_length=100, blank=True, default="")
    company = models.CharField(max_length=200, blank=True, default="")
    job_title = models.CharField(max_length=200, blank=True, default="")
    website = models.CharField(max_length=500, blank=True, default="")
    city = models.CharField(max_length=100, blank=True, default="")
    phone = models.CharField(max_length=40, blank=True, default="")
    country = models.CharField(max_length=2, blank=True, default="")
    source = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=20, choices=LeadStatus.choices, default=LeadStatus.NEW)
    score = models.SmallIntegerField(default=0)
    score_breakdown = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_leads"
    )
    external_id = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    custom_fields = models.JSONField(default=dict, blank=True)
    possible_duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change; the ETag.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "email"], condition=Q(email__isnull=False), name="lead_unique_email_per_account"
            ),
            models.UniqueConstraint(
                fields=["account", "external_id"],
                condition=Q(external_id__isnull=False),
                name="lead_unique_external_id_per_account",
            ),
            models.CheckConstraint(
                condition=Q(email__isnull=False) | ~Q(phone="") | Q(external_id__isnull=False),
                name="lead_has_identity",
            ),
            models.CheckConstraint(condition=Q(score__gte=0, score__lte=100), name="lead_score_0_100"),
        ]
        indexes = [
            # One composite index per allowed sort (keyset pagination), all led by the account.
            models.Index(fields=["account", "created_at", "id"], name="lead_acct_created_idx"),
            models.Index(fields=["account", "updated_at", "id"], name="lead_acct_updated_idx"),
            # score is sorted through LeadRank (below), not here: with no index on score a rescoring
            # UPDATE of this wide row is HOT and touches none of its ~20 indexes.
            # email is nullable: sorted by (email IS NULL, COALESCE(email, '')), see core.keyset.
            models.Index(F("account"), *nullable_sort_expressions("email"), F("id"), name="lead_acct_email_sort_idx"),
            models.Index(fields=["account", "company", "id"], name="lead_acct_company_idx"),
            models.Index(fields=["account", "last_name", "id"], name="lead_acct_last_name_idx"),
            # Common filters and the soft-duplicate lookups.
            models.Index(fields=["account", "status", "created_at", "id"], name="lead_acct_status_created_idx"),
            # The soft-duplicate lookup of every create (§4.4: same first + last name and company,
            # compared lower-cased, leads.rules.SoftDuplicateIndex): without it, a scan of the table.
            models.Index(
                F("account"),
                Lower("last_name"),
                Lower("company"),
                Lower("first_name"),
                # Ending in (created_at, id): the earliest match of a key is the index's first entry for it,
                # one probe however many leads share the name.
                F("created_at"),
                F("id"),
                name="lead_acct_soft_dup_first_idx",
            ),
            models.Index(
                fields=["account", "phone", "created_at", "id"],
                name="lead_acct_phone_first_idx",
                condition=~Q(phone=""),
            ),
            # The owner filter uses owner's own foreign-key index (a user is in few accounts).
            # Deleting a lead clears possible_duplicate_of of the leads that point at it: a partial
            # index, as few leads have one, so inserts and updates of the others never touch it.
            models.Index(
                fields=["possible_duplicate_of"],
                name="lead_possible_dup_idx",
                condition=Q(possible_duplicate_of__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.external_id or self.phone or str(self.id)

    @property
    def etag(self) -> str:
        return f'"{self.id.hex[:12]}-{self.version}"'


class LeadRank(models.Model):
    """The sort and range index of lead scores, kept in a narrow table of its own.

    A rescoring rewrites score, breakdown, scored_at and version of many leads at once. If `score`
    were indexed on the lead row, every rewritten lead would insert into all of that table's indexes
    (~20, five of them GIN); with the score index here, the lead row's update can be heap-only (HOT)
    wherever its page has room, which the table's fillfactor keeps free (a large account's chunk
    touches about one lead per page; a small account's single chunk may fill a page and fall back to
    ordinary updates), and only this table's two small indexes move.

    Never written by application code: database triggers (migration 0006) insert a row with each new
    lead, copy `score` whenever a statement changes it, and the foreign key cascades deletes, so it is
    always equal to the lead's score within the same statement. Sorting by score joins it (see
    leads.selectors.lead_ordering) and the keyset compares on (score, lead_id) of this index.
    """

    lead = models.OneToOneField(
        Lead, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="rank"
    )
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    score = models.SmallIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["account", "score", "lead"], name="lead_rank_score_idx")]

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.score}"


class Note(AccountScopedModel):
    """A free-text note on a lead (a call summary, a next step). Deleted with its lead."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField(max_length=NOTE_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["account", "lead", "created_at", "id"], name="note_acct_lead_created_idx")]

    def __str__(self) -> str:
        return f"Note {self.pk} on {self.lead_id}"


class Segment(AccountScopedModel):
    """A saved filter: `filters` holds the list's filters as JSON (strings, numbers, booleans, lists),
    validated by LeadFilterSet when saved; `segment=<id>` on the list applies them."""

    name = models.CharField(max_length=200)
    filters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="segment_unique_name_per_account")]

    def __str__(self) -> str:
        return self.name


class SuppressionReason(models.TextChoices):
    ERASED = "erased", "Erased (right to erasure)"
    REQUESTED = "requested", "Requested (the person asked not to be added)"
    OTHER = "other", "Other"


class Suppression(AccountScopedModel):
    """An email the account must not add again: erased leads (§4.12) and emails suppressed by hand.

    Only a keyed hash of the normalized email is stored (HMAC-SHA256, see leads/suppression.py and
    docs/privacy.md), never the email, so the list itself holds no personal data an attacker with the
    database could read back or recover with a dictionary of common addresses. Every create path and
    every email change checks it; an admin lifts an entry by deleting it."""

    email_hash = models.CharField(max_length=64, help_text="Hex HMAC-SHA256 of the account and normalized email.")
    reason = models.CharField(max_length=20, choices=SuppressionReason.choices, default=SuppressionReason.REQUESTED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Also the index of the set-based check every create runs (account, email_hash IN (...)).
            models.UniqueConstraint(fields=["account", "email_hash"], name="suppression_unique_hash_per_account"),
        ]
        indexes = [models.Index(fields=["account", "created_at", "id"], name="suppression_acct_created_idx")]

    def __str__(self) -> str:
        return f"Suppression {self.email_hash[:12]}… ({self.reason})"

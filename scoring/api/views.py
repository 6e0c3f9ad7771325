"""Thin DRF views for scoring rules, preview, recalculation and scoring one lead."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from accounts.scopes import ADMIN, LEADS_READ, LEADS_WRITE
from core.api import AccountScopedAPIView
from core.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from core.schema import errors, list_envelope
from jobs.api.serializers import JobSerializer
from leads.api.serializers import lead_to_dict

from .. import selectors, services
from .serializers import (
    LeadScoreSerializer,
    PreviewInputSerializer,
    PreviewSerializer,
    RecalculateInputSerializer,
    ScoringRuleInputSerializer,
    ScoringRulePartialSerializer,
    ScoringRuleSerializer,
    ScoringRuleWriteResultSerializer,
)


def _with_job(rule, job, request) -> dict:
    job.refresh_from_db()  # in the embedded mode the job already ran when the transaction committed
    job_data = JobSerializer(job, context={"request": request}).data
    return {**ScoringRuleSerializer(rule).data, "recalculation_job": job_data}


class ScoringRuleListView(AccountScopedAPIView):
    required_scopes = {"GET": LEADS_READ, "POST": ADMIN}

    @extend_schema(operation_id="scoring_rules_list", responses={200: list_envelope(ScoringRuleSerializer, "RuleList")})
    def get(self, request):
        """List the account's scoring rules."""
        rules = ScoringRuleSerializer(selectors.rule_list(account=self.account), many=True).data
        return Response({"results": rules, "next_cursor": None, "has_more": False})

    @extend_schema(
        operation_id="scoring_rules_create",
        request=ScoringRuleInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: ScoringRuleWriteResultSerializer, **errors(400)},
    )
    @idempotent
    def post(self, request):
        """Create a rule (admin); a recalculation job rescoring the account's leads is enqueued."""
        serializer = ScoringRuleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule, job = services.scoring_rule_create(account=self.account, actor=self.actor, data=serializer.validated_data)
        return Response(_with_job(rule, job, request), status=status.HTTP_201_CREATED)


class ScoringRuleDetailView(AccountScopedAPIView):
    required_scopes = {"GET": LEADS_READ, "*": ADMIN}

    @extend_schema(operation_id="scoring_rules_retrieve", responses={200: ScoringRuleSerializer, **errors(404)})
    def get(self, request, rule_id):
        """One scoring rule."""
        return Response(ScoringRuleSerializer(selectors.rule_get(account=self.account, rule_id=rule_id)).data)

    @extend_schema(
        operation_id="scoring_rules_update",
        request=ScoringRulePartialSerializer,
        responses={200: ScoringRuleWriteResultSerializer, **errors(400, 404)},
    )
    def patch(self, request, rule_id):
        """Change a rule (admin; fields not sent keep their values); enqueues a recalculation."""
        serializer = ScoringRulePartialSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule, job = services.scoring_rule_update(
            account=self.account, actor=self.actor, rule_id=rule_id, data=serializer.validated_data
        )
        return Response(_with_job(rule, job, request))

    @extend_schema(
        operation_id="scoring_rules_put",
        request=ScoringRulePartialSerializer,
        responses={200: ScoringRuleWriteResultSerializer, **errors(400, 404)},
    )
    def put(self, request, rule_id):
        """Change a rule (same as PATCH)."""
        return self.patch(request, rule_id)

    @extend_schema(operation_id="scoring_rules_destroy", responses={202: JobSerializer, **errors(404)})
    def delete(self, request, rule_id):
        """Delete a rule (admin); answers 202 with the recalculation job that removes its points."""
        job = services.scoring_rule_delete(account=self.account, actor=self.actor, rule_id=rule_id)
        job.refresh_from_db()
        return Response(JobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class ScoringRulePreviewView(AccountScopedAPIView):
    required_scopes = {"POST": LEADS_READ}

    @extend_schema(
        operation_id="scoring_rules_preview",
        request=PreviewInputSerializer,
        responses={200: PreviewSerializer, **errors(400, 404)},
    )
    def post(self, request):
        """How many leads a rule would match, and the score distribution before and after it."""
        serializer = PreviewInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        rule_id = data.pop("rule_id", None)
        return Response(services.rule_preview(account=self.account, data=data, rule_id=rule_id))


class RecalculateView(AccountScopedAPIView):
    required_scopes = {"POST": ADMIN}

    @extend_schema(
        operation_id="scoring_recalculate",
        request=RecalculateInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={202: JobSerializer, **errors(400)},
    )
    @idempotent
    def post(self, request):
        """Rescore the account's leads (optionally only those matching `filters`) as a job."""
        serializer = RecalculateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.recalculation_enqueue(
            account=self.account, actor=self.actor, params=serializer.validated_data.get("filters")
        )
        job.refresh_from_db()
        headers = {"Location": request.build_absolute_uri(f"/api/v1/jobs/{job.pk}")}
        return Response(
            JobSerializer(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED, headers=headers
        )


class LeadScoreView(AccountScopedAPIView):
    required_scopes = {"POST": LEADS_WRITE}

    @extend_schema(
        operation_id="leads_score",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: LeadScoreSerializer, **errors(404)},
    )
    @idempotent
    def post(self, request, lead_id):
        """Recalculate this lead's score now; returns the score and its breakdown."""
        lead = services.lead_score_now(account=self.account, actor=self.actor, lead_id=lead_id)
        body = lead_to_dict(lead)
        return Response(
            {k: body[k] for k in ("id", "score", "score_breakdown", "scored_at")}, headers={"ETag": lead.etag}
        )

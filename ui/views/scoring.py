"""Scoring rules: everyone in the account sees the rules and a rule, and previews a rule; admins and
owners also create, edit, toggle and delete (the API's scopes: `leads:read` lists, retrieves and
previews, `admin` writes). After a change the recalculation job's progress bar (the job partial of
ui/views/exports.py).

API twins: /api/v1/scoring-rules (`scoring_rules_list`, `_create`, `_update`, `_destroy`),
/api/v1/scoring-rules/preview (`scoring_rules_preview`): the same serializers and services."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from accounts.scopes import ADMIN, LEADS_READ
from core.errors import ApplicationError
from jobs.selectors import job_get
from scoring import selectors, services
from scoring.api.serializers import PreviewInputSerializer, ScoringRuleInputSerializer, ScoringRulePartialSerializer
from scoring.models import Operator

from ..context import UiMixin
from ..forms_data import RULE_FIELD_SUGGESTIONS, ScoringRuleForm, rule_value_text
from .common import validated
from .exports import job_context


def _redirect_with_job(job):
    return redirect(f"{reverse('ui:scoring-rule-list')}?job={job.pk}")


def _preview_rows(preview: dict) -> list[dict]:
    dist = preview["distribution"]
    peak = max([1, *dist["before"], *dist["after"]])
    return [
        {"bucket": b, "before": x, "after": y, "before_pct": round(100 * x / peak), "after_pct": round(100 * y / peak)}
        for b, x, y in zip(dist["buckets"], dist["before"], dist["after"], strict=True)
    ]


class ScoringRuleMixin(UiMixin):
    """Writes are admins' and owners' only, like the API's; members see the 403 page on them. Views
    that members may open widen `required_scopes` for their read (GET) or the preview."""

    required_scopes = {"*": ADMIN}

    def render_page(self, request, form, *, rule=None, preview=None, job=None, status=200):
        rules = list(selectors.rule_list(account=self.account))
        for r in rules:
            r.value_text = rule_value_text(r.value, r.operator)
        context = {
            "rules": rules,
            "form": form,
            "rule": rule,
            "preview": preview,
            "preview_rows": _preview_rows(preview) if preview else None,
            "field_suggestions": RULE_FIELD_SUGGESTIONS,
            "operators": Operator,
            # a member reads and previews: the page leaves out what they could not submit
            "can_edit": self.actor.has_scope(ADMIN),
            **(job_context(job) if job is not None else {}),
        }
        template = "ui/scoring/edit.html" if rule is not None else "ui/scoring/list.html"
        return render(request, template, context, status=status)


class ScoringRuleListView(ScoringRuleMixin, View):
    required_scopes = {"GET": LEADS_READ, "*": ADMIN}

    def get(self, request):
        job = job_get(account=self.account, job_id=request.GET["job"]) if request.GET.get("job") else None
        return self.render_page(request, ScoringRuleForm(initial={"active": True}), job=job)

    def post(self, request):
        form = ScoringRuleForm(request.POST)
        if form.is_valid():
            try:
                data = validated(ScoringRuleInputSerializer, form.to_data())
                rule, job = services.scoring_rule_create(account=self.account, actor=self.actor, data=data)
            except ApplicationError as exc:
                form.add_service_errors(exc.detail, exc.errors)
            else:
                messages.success(request, f"Rule “{rule.name}” created; rescoring the leads.")
                return _redirect_with_job(job)
        return self.render_page(request, form)


class ScoringRuleEditView(ScoringRuleMixin, View):
    """The rule's page: its form for admins and owners; for members the same values to read and
    preview, without a save."""

    required_scopes = {"GET": LEADS_READ, "*": ADMIN}

    def get(self, request, rule_id):
        rule = selectors.rule_get(account=self.account, rule_id=rule_id)
        return self.render_page(request, ScoringRuleForm(initial=ScoringRuleForm.initial_for(rule)), rule=rule)

    def post(self, request, rule_id):
        rule = selectors.rule_get(account=self.account, rule_id=rule_id)
        form = ScoringRuleForm(request.POST, initial=ScoringRuleForm.initial_for(rule))
        if form.is_valid():
            try:
                data = validated(ScoringRulePartialSerializer, form.to_data())
                rule, job = services.scoring_rule_update(
                    account=self.account, actor=self.actor, rule_id=rule.pk, data=data
                )
            except ApplicationError as exc:
                form.add_service_errors(exc.detail, exc.errors)
            else:
                messages.success(request, f"Rule “{rule.name}” saved; rescoring the leads.")
                return _redirect_with_job(job)
        return self.render_page(request, form, rule=rule)


class ScoringRuleToggleView(ScoringRuleMixin, View):
    """Switch a rule on or off (PATCH {"active": ...} in the API)."""

    def post(self, request, rule_id):
        rule = selectors.rule_get(account=self.account, rule_id=rule_id)
        data = validated(ScoringRulePartialSerializer, {"active": not rule.active})
        rule, job = services.scoring_rule_update(account=self.account, actor=self.actor, rule_id=rule.pk, data=data)
        state = "activated" if rule.active else "deactivated"
        messages.success(request, f"Rule “{rule.name}” {state}; rescoring the leads.")
        return _redirect_with_job(job)


class ScoringRuleDeleteView(ScoringRuleMixin, View):
    """GET asks for confirmation; POST deletes and rescoring removes the rule's points."""

    def get(self, request, rule_id):
        rule = selectors.rule_get(account=self.account, rule_id=rule_id)
        return render(request, "ui/scoring/delete_confirm.html", {"rule": rule})

    def post(self, request, rule_id):
        rule = selectors.rule_get(account=self.account, rule_id=rule_id)
        job = services.scoring_rule_delete(account=self.account, actor=self.actor, rule_id=rule.pk)
        messages.success(request, f"Rule “{rule.name}” deleted; rescoring the leads.")
        return _redirect_with_job(job)


class ScoringRulePreviewView(ScoringRuleMixin, View):
    """How many leads the form's rule would match and the score distribution before and after it,
    without saving. htmx swaps in the result panel; without JavaScript the whole page comes back.
    A read (POST /api/v1/scoring-rules/preview needs `leads:read`), so members may run it."""

    required_scopes = {"POST": LEADS_READ}

    def post(self, request):
        raw_rule_id = request.POST.get("rule_id") or None
        rule = selectors.rule_get(account=self.account, rule_id=raw_rule_id) if raw_rule_id else None
        form = ScoringRuleForm(request.POST)
        preview = None
        if form.is_valid():
            try:
                body = form.to_data()
                if rule is not None:
                    body["rule_id"] = rule.pk
                data = dict(validated(PreviewInputSerializer, body))
                rule_id = data.pop("rule_id", None)
                preview = services.rule_preview(account=self.account, data=data, rule_id=rule_id)
            except ApplicationError as exc:
                form.add_service_errors(exc.detail, exc.errors)
        if request.htmx:
            context = {"form": form, "preview": preview, "preview_rows": _preview_rows(preview) if preview else None}
            return render(request, "ui/scoring/_preview.html", context)
        return self.render_page(request, form, rule=rule, preview=preview)

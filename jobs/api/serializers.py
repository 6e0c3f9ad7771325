from rest_framework import serializers
from rest_framework.reverse import reverse

from ..models import Job, JobStatus


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "params",
            "progress",
            "result",
            "error",
            "download_url",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_progress(self, job) -> dict:
        return {"done": job.progress_done, "total": job.progress_total}

    def get_download_url(self, job) -> str | None:
        if job.status != JobStatus.SUCCEEDED or not job.file:
            return None
        request = self.context.get("request")
        return reverse("job-download", kwargs={"job_id": job.pk}, request=request)

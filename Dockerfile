# Image of the four services for docker-compose.yml; one image, the command picks the service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY shared shared
COPY services services
COPY demo demo
COPY stack/__init__.py stack/environment.py stack/services.py stack/
RUN pip install --no-cache-dir . && useradd --system otp
USER otp

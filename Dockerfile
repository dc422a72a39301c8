# Patchwire image: the same code for the web server, the one-shot migration and the workers.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATCHWIRE_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY nodes ./nodes
COPY webapp ./webapp
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
# Editable install: templates/, static/ and migrations/ are read from /app at run time.
RUN pip install --no-cache-dir -e . && useradd --create-home --uid 10001 patchwire \
    && mkdir -p /data && chown patchwire /data
USER patchwire
EXPOSE 8000
CMD ["patchwire", "serve", "--host", "0.0.0.0", "--port", "8000"]

COPY {{schema}}.jobs (id, type, queue, status, priority, payload, max_attempts, run_at, timeout_seconds, brief_id,
                      fairness_key)
FROM STDIN

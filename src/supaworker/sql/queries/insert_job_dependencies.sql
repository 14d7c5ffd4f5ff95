-- Pairs (job_id, depends_on); the trigger job_dependencies_check refuses cycles and dead parents.
INSERT INTO {{schema}}.job_dependencies (job_id, depends_on)
SELECT * FROM unnest(%(job_ids)s::bigint[], %(depends_on)s::bigint[])

-- The port the server itself listens on (doctor: differs from the one connected to behind a pooler).
SELECT inet_server_port()

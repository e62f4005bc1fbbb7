"""Profile one endpoint in-process: where does a request spend its time?

    DATABASE_URL=... python -m bench.profile bench/results/load_data_sqlite_1000.json \
        [observees|observees100|observers|show|enrollments|courses|health] [requests]

Runs the request through Django's test client (the whole middleware and DRF
stack, no HTTP server) under pyinstrument when installed, else cProfile, and
prints the hot spots plus the SQL each request runs. Reads only.
"""

import cProfile
import io
import json
import os
import pstats
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observers_project.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    data = json.loads(Path(argv[1]).read_text())
    which = argv[2] if len(argv) > 2 else "observees"
    count = int(argv[3]) if len(argv) > 3 else 300
    t, u = data["tokens"], data["users"]
    paths = {
        "health": ("/health", None),
        "observees": ("/api/v1/users/self/observees", t["parent2"]),
        "observees100": (
            "/api/v1/users/self/observees?per_page=100&include[]=avatar_url",
            t["observer100"],
        ),
        "observers": ("/api/v1/users/self/observers", t["observed_student"]),
        "show": (f"/api/v1/users/self/observees/{u['children'][0]}", t["parent2"]),
        "enrollments": ("/api/v1/users/self/enrollments", t["parent2"]),
        "courses": ("/api/v1/courses", t["parent2"]),
    }
    path, token = paths[which]
    headers = {"HTTP_HOST": data["domain"]}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    client = Client()
    for _ in range(20):  # warm up imports, URL resolver and connection
        assert client.get(path, **headers).status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        client.get(path, **headers)
    print(f"{path}: {len(ctx.captured_queries)} queries per request")
    for q in ctx.captured_queries:
        print(f"  {q['time']}s  {q['sql'][:160]}")
    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None
    if Profiler is not None:
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(count):
            client.get(path, **headers)
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        return
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(count):
        client.get(path, **headers)
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(35)
    print(out.getvalue())


if __name__ == "__main__":
    main(sys.argv)

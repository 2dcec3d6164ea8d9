"""Operations: queue state, metrics, health, structured logs and the dashboard.

`app.ops.install.install(app)` adds the ops routes and middleware to the FastAPI application.
"""

-- Run once by the postgres image on an empty data volume (docker-compose.yml). The names match
-- the defaults of PREFECT_DB / MLFLOW_DB in .env.example and tasks/prod_local.py; `make
-- prod-local` creates them itself on an existing server.
CREATE DATABASE labelwise_prefect;
CREATE DATABASE labelwise_mlflow;
CREATE DATABASE labelwise_labelstudio;

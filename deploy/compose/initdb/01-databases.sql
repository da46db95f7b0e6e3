-- Run once by the postgres image on its first start (empty data volume), as
-- POSTGRES_USER. One database per service: no service reads another's data.
-- The names are the ones in the database URLs of docker-compose.yml.
CREATE DATABASE request_svc;
CREATE DATABASE governance_svc;
CREATE DATABASE participant_svc;
CREATE DATABASE deployer_svc;
CREATE DATABASE gateway;

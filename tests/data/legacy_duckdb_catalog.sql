-- The catalog schema of the DuckDB era (workbench <= 5b6c5d8), kept to test the conversion.
CREATE SEQUENCE project_ids START 1;
CREATE SEQUENCE training_data_ids START 1;
CREATE SEQUENCE item_metadata_ids START 1;
CREATE SEQUENCE configuration_ids START 1;
CREATE SEQUENCE tuning_job_ids START 1;
CREATE SEQUENCE model_ids START 1;
CREATE SEQUENCE job_ids START 1;
CREATE SEQUENCE log_ids START 1;
CREATE SEQUENCE trial_ids START 1;
CREATE TABLE projects (
    id INTEGER PRIMARY KEY DEFAULT nextval('project_ids'),
    name VARCHAR NOT NULL UNIQUE,
    user_column VARCHAR NOT NULL,
    item_column VARCHAR NOT NULL,
    time_column VARCHAR,
    active_model_id INTEGER,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE training_data (
    id INTEGER PRIMARY KEY DEFAULT nextval('training_data_ids'),
    project_id INTEGER NOT NULL,
    name VARCHAR,
    source VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    n_rows BIGINT NOT NULL,
    n_users INTEGER NOT NULL,
    n_items INTEGER NOT NULL,
    time_min TIMESTAMP,
    time_max TIMESTAMP,
    dropped VARCHAR NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE item_metadata (
    id INTEGER PRIMARY KEY DEFAULT nextval('item_metadata_ids'),
    project_id INTEGER NOT NULL,
    source VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    item_column VARCHAR NOT NULL,
    n_rows BIGINT NOT NULL,
    columns VARCHAR NOT NULL DEFAULT '[]',
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE configurations (
    id INTEGER PRIMARY KEY DEFAULT nextval('configuration_ids'),
    project_id INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    algorithm VARCHAR NOT NULL,
    params VARCHAR NOT NULL DEFAULT '{}',
    tuning_job_id INTEGER,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY DEFAULT nextval('job_ids'),
    kind VARCHAR NOT NULL,
    project_id INTEGER,
    status VARCHAR NOT NULL DEFAULT 'PENDING',
    progress DOUBLE NOT NULL DEFAULT 0,
    step VARCHAR NOT NULL DEFAULT '',
    pid INTEGER,
    host VARCHAR,
    process_started DOUBLE,
    error VARCHAR,
    request VARCHAR NOT NULL DEFAULT '{}',
    result VARCHAR NOT NULL DEFAULT '{}',
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    started_at TIMESTAMP,
    finished_at TIMESTAMP
);
CREATE TABLE job_logs (
    id BIGINT PRIMARY KEY DEFAULT nextval('log_ids'),
    job_id INTEGER NOT NULL,
    logged_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    level VARCHAR NOT NULL DEFAULT 'INFO',
    message VARCHAR NOT NULL
);
CREATE TABLE tuning_jobs (
    id INTEGER PRIMARY KEY DEFAULT nextval('tuning_job_ids'),
    project_id INTEGER NOT NULL,
    training_data_id INTEGER NOT NULL,
    job_id INTEGER,
    n_trials INTEGER NOT NULL,
    timeout_overall DOUBLE,
    timeout_singlestep DOUBLE,
    algorithms VARCHAR NOT NULL DEFAULT '[]',
    metric VARCHAR NOT NULL,
    cutoff INTEGER NOT NULL,
    split VARCHAR NOT NULL DEFAULT '{}',
    seed INTEGER NOT NULL DEFAULT 0,
    n_jobs INTEGER NOT NULL DEFAULT 1,
    storage VARCHAR,
    study_name VARCHAR,
    train_after_tuning BOOLEAN NOT NULL DEFAULT true,
    best_score DOUBLE,
    best_configuration_id INTEGER,
    model_id INTEGER,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE tuning_trials (
    id BIGINT PRIMARY KEY DEFAULT nextval('trial_ids'),
    tuning_job_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    algorithm VARCHAR,
    params VARCHAR NOT NULL DEFAULT '{}',
    score DOUBLE,
    seconds DOUBLE,
    state VARCHAR NOT NULL,
    worker INTEGER,
    logged_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE models (
    id INTEGER PRIMARY KEY DEFAULT nextval('model_ids'),
    project_id INTEGER NOT NULL,
    configuration_id INTEGER NOT NULL,
    training_data_id INTEGER NOT NULL,
    job_id INTEGER,
    status VARCHAR NOT NULL DEFAULT 'PENDING',
    file VARCHAR,
    basename VARCHAR,
    filesize BIGINT,
    irspack_version VARCHAR,
    data_fingerprint VARCHAR,
    n_users INTEGER,
    n_items INTEGER,
    n_interactions BIGINT,
    train_seconds DOUBLE,
    metrics VARCHAR NOT NULL DEFAULT '{}',
    stats VARCHAR NOT NULL DEFAULT '{}',
    ins_datetime TIMESTAMP NOT NULL DEFAULT current_timestamp
);

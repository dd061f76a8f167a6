-- The business systems' simulators: exactly the tables of shared/sources.md (names, types, keys).
-- A public contract: tests, demos and evaluators write to these tables with plain SQL.
-- REPLICA IDENTITY FULL so that Debezium's update and delete events carry the whole old row
-- (our convention for the simulators; production sources are configured per system).

CREATE SCHEMA IF NOT EXISTS si_core;
CREATE SCHEMA IF NOT EXISTS medical;
CREATE SCHEMA IF NOT EXISTS hukou;
CREATE SCHEMA IF NOT EXISTS civil;
CREATE SCHEMA IF NOT EXISTS education;
CREATE SCHEMA IF NOT EXISTS justice;
CREATE SCHEMA IF NOT EXISTS employment;
CREATE SCHEMA IF NOT EXISTS card;
CREATE SCHEMA IF NOT EXISTS national;

-- si_core: social insurance core business system (LD/T 92-2013 indicator names)
CREATE TABLE IF NOT EXISTS si_core.ab01 (
    aab001 varchar(20) PRIMARY KEY,
    aab003 varchar(18),
    aab004 varchar(100),
    aab019 varchar(2),
    aab301 varchar(6),
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE IF NOT EXISTS si_core.ac01 (
    aac001 varchar(20) PRIMARY KEY,
    aac002 varchar(20),
    aac003 varchar(50),
    aac004 varchar(1),
    aac006 varchar(8),
    aac009 varchar(2),
    aac010 varchar(150),
    aae006 varchar(150),
    aae005 varchar(20),
    aac012 varchar(2),
    aab301 varchar(6),
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE IF NOT EXISTS si_core.ac02 (
    aac001 varchar(20),
    aae140 varchar(3),
    aab301 varchar(6),
    aab001 varchar(20),
    aac008 varchar(1),
    aac030 date,
    aae030 date,
    aae031 date,
    updated_at timestamptz DEFAULT now(),
    PRIMARY KEY (aac001, aae140, aab301)
);
CREATE TABLE IF NOT EXISTS si_core.ac60 (
    id bigserial PRIMARY KEY,
    aac001 varchar(20),
    aae140 varchar(3),
    aab301 varchar(6),
    aae030 date,
    aae031 date,
    aae116 varchar(1),
    updated_at timestamptz DEFAULT now()
);

-- medical: medical security bureau system (national medical insurance platform names)
CREATE TABLE IF NOT EXISTS medical.insured (
    psn_no varchar(30),
    certno varchar(20),
    psn_cert_type varchar(2),
    psn_name varchar(50),
    gend varchar(1),
    brdy date,
    insutype varchar(3),
    psn_insu_stas varchar(1),
    insu_admdvs varchar(6),
    emp_no varchar(20),
    begndate date,
    enddate date,
    updated_at timestamptz DEFAULT now(),
    PRIMARY KEY (psn_no, insutype)
);

-- hukou: public security household registration (pinyin-initial names)
CREATE TABLE IF NOT EXISTS hukou.person (
    sfzh varchar(20) PRIMARY KEY,
    xm varchar(50),
    xb varchar(1),
    csrq date,
    mz varchar(2),
    hjdz_xzqh varchar(6),
    hjdz varchar(150),
    hh varchar(20),
    yhzgx varchar(2),
    ryzt varchar(1),
    zxrq date,
    updated_at timestamptz DEFAULT now()
);

-- Residence permits (居住证) of people whose household is registered elsewhere: the non-local
-- long-term residents (外来常住人员) public security also provides (Qinghai plan 五(二)).
CREATE TABLE IF NOT EXISTS hukou.resident_permit (
    jzzh varchar(30) PRIMARY KEY,
    sfzh varchar(20),
    xm varchar(50),
    xb varchar(1),
    csrq date,
    hjdz_xzqh varchar(6),
    jzdz_xzqh varchar(6),
    jzdz varchar(150),
    qfrq date,
    yxqz date,
    zt varchar(1),
    updated_at timestamptz DEFAULT now()
);

-- civil affairs
CREATE TABLE IF NOT EXISTS civil.cremation (
    id bigserial PRIMARY KEY,
    sfzh varchar(20),
    xm varchar(50),
    swrq date,
    updated_at timestamptz DEFAULT now()
);
CREATE TABLE IF NOT EXISTS civil.dibao (
    id bigserial PRIMARY KEY,
    sfzh varchar(20),
    xm varchar(50),
    xzqh varchar(6),
    ksrq date,
    jsrq date,
    updated_at timestamptz DEFAULT now()
);

-- education
CREATE TABLE IF NOT EXISTS education.student (
    xh varchar(30) PRIMARY KEY,
    sfzjh varchar(20),
    xm varchar(50),
    xxmc varchar(100),
    xd varchar(1),
    xjzt varchar(1),
    xzqh varchar(6),
    rxrq date,
    byrq date,
    updated_at timestamptz DEFAULT now()
);

-- justice
CREATE TABLE IF NOT EXISTS justice.inmate (
    id bigserial PRIMARY KEY,
    sfzh varchar(20),
    xm varchar(50),
    rjrq date,
    cjrq date,
    jyxzqh varchar(6),
    updated_at timestamptz DEFAULT now()
);

-- employment service system
CREATE TABLE IF NOT EXISTS employment.job_registration (
    id bigserial PRIMARY KEY,
    aac002 varchar(20),
    aac003 varchar(50),
    aab001 varchar(20),
    aab004 varchar(100),
    aab301 varchar(6),
    start_date date,
    end_date date,
    updated_at timestamptz DEFAULT now()
);

-- social security card system
CREATE TABLE IF NOT EXISTS card.card_holder (
    aaz500 varchar(20) PRIMARY KEY,
    aac002 varchar(20),
    aac003 varchar(50),
    aae005 varchar(20),
    bank varchar(50),
    card_status varchar(1),
    issue_date date,
    updated_at timestamptz DEFAULT now()
);

-- results of the provincial and national registry comparison
CREATE TABLE IF NOT EXISTS national.cross_region (
    id bigserial PRIMARY KEY,
    aac002 varchar(20),
    insurance varchar(12),
    scope varchar(8),
    region varchar(6),
    status varchar(1),
    benefit varchar(1),
    reported_at timestamptz,
    updated_at timestamptz DEFAULT now()
);

DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT table_schema, table_name FROM information_schema.tables
             WHERE table_schema IN ('si_core', 'medical', 'hukou', 'civil', 'education',
                                    'justice', 'employment', 'card', 'national')
               AND table_type = 'BASE TABLE'
    LOOP
        EXECUTE format('ALTER TABLE %I.%I REPLICA IDENTITY FULL', t.table_schema, t.table_name);
    END LOOP;
END $$;

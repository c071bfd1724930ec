DROP TABLE matter_escalations;
DROP TABLE matter_callbacks;
DROP TABLE matters;
DROP TABLE user_departments;

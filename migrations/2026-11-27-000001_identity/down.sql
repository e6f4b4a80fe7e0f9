DROP TABLE subscriptions;
DROP TABLE plans;
DROP TABLE users;

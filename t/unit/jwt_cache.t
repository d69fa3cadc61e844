use lib 't/lib'; use MLGuard::Unit; MLGuard::Unit::run('test_jwt_cache');

# frozen_string_literal: true

# Job file for integration tests that run a real Sidekiq (Debian's ruby-sidekiq 6.4.1;
# the same file also loads under Sidekiq 7.x and 8.x):
#
#   REDIS_URL=redis://127.0.0.1:PORT/0 sidekiq -r ./jobs.rb -c 3 -t 5
#
# Enqueue from a test:
#
#   REDIS_URL=... ruby -r sidekiq -r ./jobs.rb -e 'SleepJob.perform_async(3, "m1")'
#
# SleepJob adds its marker to the Redis set "sg:started" when it begins and to
# "sg:done" when it finishes, so a test can tell in-flight jobs from finished ones,
# and a job that SIGTERM interrupted (pushed back to its queue) from one that completed.
require "sidekiq"

# redis-rb 4.8 (used by Sidekiq 6.x) warns on every BRPOP that Sidekiq 6.4.1 issues;
# keep test logs readable. Sidekiq 7+ uses redis-client and has no ::Redis.
if defined?(::Redis) && ::Redis.respond_to?(:silence_deprecations=)
  ::Redis.silence_deprecations = true
end

redis_config = { url: ENV.fetch("REDIS_URL") }

Sidekiq.configure_server { |config| config.redis = redis_config }
Sidekiq.configure_client { |config| config.redis = redis_config }

class SleepJob
  include Sidekiq::Job # an alias of Sidekiq::Worker from 6.3 on
  sidekiq_options retry: false

  def perform(seconds, marker)
    Sidekiq.redis { |r| r.sadd("sg:started", marker.to_s) }
    sleep Float(seconds)
    Sidekiq.redis { |r| r.sadd("sg:done", marker.to_s) }
  end
end

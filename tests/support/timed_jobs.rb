# frozen_string_literal: true

# The shared job file plus a job that records *when* it started and finished, so that the
# drain tests can bound how long /drain may take:
#
#   REDIS_URL=... sidekiq -r ./timed_jobs.rb -c 3 -t 5
#
# TimedJob.perform(seconds, marker) adds marker to the sets "sg:started"/"sg:done" (like
# SleepJob) and the epoch time to the hashes "sg:started_at"/"sg:done_at".
require_relative "sidekiq/jobs"

class TimedJob
  include Sidekiq::Job
  sidekiq_options retry: false

  def perform(seconds, marker)
    Sidekiq.redis do |r|
      r.hset("sg:started_at", marker.to_s, Time.now.to_f.to_s)
      r.sadd("sg:started", marker.to_s)
    end
    sleep Float(seconds)
    Sidekiq.redis do |r|
      r.hset("sg:done_at", marker.to_s, Time.now.to_f.to_s)
      r.sadd("sg:done", marker.to_s)
    end
  end
end

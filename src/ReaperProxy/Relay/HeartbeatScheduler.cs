using ReaperProxy.Configuration;

namespace ReaperProxy.Relay;

/// <summary>
/// The one heartbeat for all connections (Kestrel's Heartbeat pattern, not a timer per connection):
/// a tick walks the registry and each connection compares its <c>long</c> deadlines with the clock.
/// The tick follows the policies: a tenth of the smallest interval any policy uses, between 10 ms and
/// 1 s, so a dead leg is reaped within its deadline plus at most two ticks. Each tick is cut into
/// sub-ticks, one per registry group (<see cref="ConnectionRegistry.Shards"/>): every connection is still
/// visited once per tick, and the pings due in one tick go out spread over it. It keeps running through
/// shutdown, until the server has drained, because closing handshakes on shutdown need it.
/// </summary>
internal sealed class HeartbeatScheduler : IHostedService, IDisposable
{
    private static readonly TimeSpan s_minTick = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan s_maxTick = TimeSpan.FromSeconds(1);

    private readonly ConnectionRegistry _registry;
    private readonly ConnectionDrain _drain;
    private readonly ReaperSettingsMonitor _settings;
    private readonly TimeProvider _time;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<HeartbeatScheduler> _logger;
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private int _disposed;

    public HeartbeatScheduler(ConnectionRegistry registry, ConnectionDrain drain, ReaperSettingsMonitor settings, TimeProvider time, IHostApplicationLifetime lifetime, ILogger<HeartbeatScheduler> logger)
    {
        _drain = drain;
        _registry = registry;
        _settings = settings;
        _time = time;
        _lifetime = lifetime;
        _logger = logger;
    }

    /// <summary>The tick period for a configuration.</summary>
    public static TimeSpan TickPeriod(ReaperSettings settings)
    {
        var tick = settings.SmallestInterval() / 10;
        return tick < s_minTick ? s_minTick : tick > s_maxTick ? s_maxTick : tick;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _lifetime.ApplicationStopping.Register(_drain.Begin);
        _lifetime.ApplicationStopped.Register(Dispose);
        _loop = Task.Run(RunAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        // Registered as a singleton and as a hosted service: the container may dispose it twice.
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _stop.Cancel();
            _stop.Dispose();
        }
    }

    /// <summary>One walk over all connections (tests call it directly with a fake clock).</summary>
    // One group of connections: each is visited once per TickPeriod, one group per sub-tick.
    private void Tick(int shard)
    {
        var now = _time.GetTimestamp();
        foreach (var (id, connection) in _registry.Entries(shard))
        {
            try
            {
                connection.OnTick(now);
            }
            catch (Exception ex)
            {
                Log.TickFailed(_logger, id, ex);
            }
        }
    }

    private async Task RunAsync()
    {
        var token = _stop.Token;
        var shard = 0;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TickPeriod(_settings.Current) / ConnectionRegistry.Shards, _time, token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Tick(shard);
            shard = (shard + 1) % ConnectionRegistry.Shards;
        }
    }
}

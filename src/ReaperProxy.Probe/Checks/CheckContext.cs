using ReaperProxy.Probe.Protocol;

namespace ReaperProxy.Probe.Checks;

/// <summary>What a running check gets: the settings, its progress line, the clock, Ctrl-C.</summary>
internal sealed class CheckContext(ProbeSettings settings, CheckProgress progress, TimeProvider time, CancellationToken interrupt)
{
    public ProbeSettings Settings { get; } = settings;

    public CheckProgress Progress { get; } = progress;

    public TimeProvider Time { get; } = time;

    /// <summary>Ctrl-C (or SIGTERM): stop now and report what was learned.</summary>
    public CancellationToken Interrupt { get; } = interrupt;

    /// <summary>How long this check may run after its upgrade.</summary>
    public TimeSpan Limit => Progress.Limit;

    /// <summary>Opens the check's own connection; its limit starts when the upgrade completes.</summary>
    public async Task<ProbeSession> OpenAsync(SocketTuning tuning)
    {
        var connection = await WebSocketConnector.ConnectAsync(Settings.Connect, tuning, Interrupt);
        var session = new ProbeSession(connection, Time, Progress, Limit, Interrupt);
        Progress.Connected(session.StartedAt);
        Progress.Status = "open";
        Progress.Note($"connected ({connection.StatusLine}), limit {Durations.Format(Limit)}");
        return session;
    }
}

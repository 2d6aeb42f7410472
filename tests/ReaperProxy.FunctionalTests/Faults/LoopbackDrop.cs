using System.Net;
using System.Security.Cryptography;
using ReaperProxy.FunctionalTests.Observability;

namespace ReaperProxy.FunctionalTests.Faults;

/// <summary>
/// An iptables rule that drops every packet from one loopback address of a test's own (127.x.y.z, never
/// 127.0.0.1): a peer bound to it loses its link mid-stream, as after a cable pull or a NAT entry expiring,
/// while everything else on the machine is untouched. The rule is removed on dispose, and carries a
/// comment naming this test process so that a leftover is recognisable. Needs root.
/// </summary>
internal sealed class LoopbackDrop : IAsyncDisposable
{
    private static readonly TimeSpan s_commandTimeout = TimeSpan.FromSeconds(15);
    private readonly string _iptables;
    private readonly string _rule;
    private bool _removed;

    private LoopbackDrop(string iptables, string rule)
    {
        _iptables = iptables;
        _rule = rule;
    }

    /// <summary>Why a test that needs this must skip here, or null when it can run (CI runs as root).</summary>
    public static string? Unavailable =>
        !OperatingSystem.IsLinux() ? "needs Linux (iptables)"
        : !Environment.IsPrivilegedProcess ? "needs root (an iptables rule on loopback); CI runs as root"
        : null;

    /// <summary>A loopback address no other test uses: 127.100-199.x.y.</summary>
    public static IPAddress NewAddress() =>
        new([127, (byte)(100 + RandomNumberGenerator.GetInt32(100)), (byte)RandomNumberGenerator.GetInt32(256), (byte)(1 + RandomNumberGenerator.GetInt32(254))]);

    /// <summary>From now on, every packet from <paramref name="source"/> is dropped (until dispose).</summary>
    public static async Task<LoopbackDrop> StartAsync(IPAddress source)
    {
        var iptables = ExternalTool.Require("iptables", "iptables");
        var rule = $"INPUT -i lo -s {source}/32 -m comment --comment reaperproxy-faults-{Environment.ProcessId} -j DROP";
        var drop = new LoopbackDrop(iptables, rule);
        var (code, output) = await ExternalTool.RunAsync(iptables, "-w 5 -I " + rule, Path.GetTempPath(), s_commandTimeout);
        if (code != 0)
        {
            throw new InvalidOperationException($"iptables -I {rule} failed ({code}): {output}");
        }

        return drop;
    }

    /// <summary>Removes the rule (once; a failure to remove fails the test loudly).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_removed)
        {
            return;
        }

        _removed = true;
        var (code, output) = await ExternalTool.RunAsync(_iptables, "-w 5 -D " + _rule, Path.GetTempPath(), s_commandTimeout);
        if (code != 0)
        {
            throw new InvalidOperationException($"iptables -D {_rule} failed ({code}): {output}; remove it by hand");
        }
    }
}

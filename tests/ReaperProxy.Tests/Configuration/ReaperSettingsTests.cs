using ReaperProxy.Configuration;

namespace ReaperProxy.Tests.Configuration;

/// <summary>The route→policy rule every caller (middleware, relay, <c>--check-config</c>) shares.</summary>
public class ReaperSettingsTests
{
    private static readonly HeartbeatPolicy s_fast = HeartbeatPolicy.Default with { Name = "fast", PingInterval = TimeSpan.FromSeconds(2) };
    private static readonly HeartbeatPolicy s_slow = HeartbeatPolicy.Default with { Name = "slow", PingInterval = TimeSpan.FromSeconds(60) };

    private static readonly ReaperSettings s_settings = new(
        ReaperSettings.DefaultAdminUrls,
        HeartbeatPolicy.Default,
        new Dictionary<string, HeartbeatPolicy>(StringComparer.OrdinalIgnoreCase) { ["fast"] = s_fast, ["slow"] = s_slow },
        new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase) { ["mapped"] = "fast", ["unmapped"] = null },
        LogFormat.Simple,
        maxConnections: null,
        ReaperSettings.DefaultDrainPeriod);

    [Fact]
    public void Reapers_mapping_of_a_route_wins_over_the_metadata_YARP_hands_over()
    {
        Assert.Same(s_fast, s_settings.PolicyForRoute("mapped", "slow"));
        Assert.Same(s_fast, s_settings.PolicyForRoute("MAPPED", metadataPolicyName: null));
    }

    [Fact]
    public void A_route_Reaper_read_without_a_policy_gets_the_default_whatever_the_metadata_says()
    {
        Assert.Same(HeartbeatPolicy.Default, s_settings.PolicyForRoute("unmapped", "slow"));
    }

    [Fact]
    public void A_route_Reaper_does_not_know_takes_its_metadata_policy()
    {
        Assert.Same(s_slow, s_settings.PolicyForRoute("from-elsewhere", "slow"));
        Assert.Same(s_slow, s_settings.PolicyForRoute("from-elsewhere", "SLOW"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("no-such-policy")]
    public void A_route_Reaper_does_not_know_without_a_known_metadata_policy_gets_the_default(string? metadata)
    {
        Assert.Same(HeartbeatPolicy.Default, s_settings.PolicyForRoute("from-elsewhere", metadata));
    }

    [Fact]
    public void The_route_id_alone_is_the_rule_without_metadata()
    {
        Assert.Same(s_fast, s_settings.PolicyForRoute("mapped"));
        Assert.Same(HeartbeatPolicy.Default, s_settings.PolicyForRoute("from-elsewhere"));
        Assert.Same(HeartbeatPolicy.Default, s_settings.PolicyForRoute(routeId: null));
    }
}

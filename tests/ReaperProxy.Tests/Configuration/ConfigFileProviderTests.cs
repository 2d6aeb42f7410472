using System.Runtime.CompilerServices;
using Microsoft.Extensions.Configuration;
using ReaperProxy.Configuration;

namespace ReaperProxy.Tests.Configuration;

/// <summary>
/// The watched <c>--config</c> file. The poll timer is switched off (infinite interval) and each test calls
/// <see cref="ConfigFileProvider.Poll"/> itself, so nothing here depends on timing.
/// </summary>
public sealed class ConfigFileProviderTests : IDisposable
{
    private const string Good = """
        {
          "Reaper": { "Heartbeat": { "PingInterval": "5s" } },
          "ReverseProxy": {
            "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/r/{**rest}" } } },
            "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } } }
          }
        }
        """;

    private const string GoodWithSecondRoute = """
        {
          "Reaper": { "Heartbeat": { "PingInterval": "7s" } },
          "ReverseProxy": {
            "Routes": {
              "r": { "ClusterId": "c", "Match": { "Path": "/r/{**rest}" } },
              "s": { "ClusterId": "c", "Match": { "Path": "/s/{**rest}" } }
            },
            "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:5001/" } } } }
          }
        }
        """;

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-provider-tests-");
    private readonly string _path;
    private readonly ConfigReloadReporter _reporter = new();
    private readonly List<string> _events = [];
    private IConfigurationRoot? _configuration;

    public ConfigFileProviderTests()
    {
        _path = Path.Combine(_dir.FullName, "reaper.json");
        _reporter.ReloadApplied += () => _events.Add("applied");
        _reporter.ReloadRejected += () => _events.Add("rejected");
    }

    public void Dispose()
    {
        (_configuration as IDisposable)?.Dispose();
        _dir.Delete(recursive: true);
    }

    [Fact]
    public void The_first_load_reads_the_file_and_registers_the_provider()
    {
        var configuration = Build(Good);

        Assert.Equal("5s", configuration["Reaper:Heartbeat:PingInterval"]);
        Assert.Equal("c", configuration["ReverseProxy:Routes:r:ClusterId"]);
        var provider = Assert.Single(_reporter.Providers);
        Assert.Empty(provider.LoadErrors);
        Assert.Empty(_events);
    }

    [Fact]
    public void The_source_makes_its_path_absolute()
    {
        var source = new ConfigFileSource("relative/reaper.json", _reporter);

        Assert.True(Path.IsPathRooted(source.Path));
        Assert.EndsWith(Path.Combine("relative", "reaper.json"), source.Path, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_first_load_is_reported_in_LoadErrors()
    {
        Build("""{ "Reaper": { "Heartbeat": { "Mode": "Sometimes" } } }""");

        var error = Assert.Single(Assert.Single(_reporter.Providers).LoadErrors);
        Assert.Equal("Reaper:Heartbeat:Mode", error.Path);
    }

    [Fact]
    public void A_missing_file_on_the_first_load_is_reported_in_LoadErrors()
    {
        var configuration = new ConfigurationBuilder()
            .Add(new ConfigFileSource(Path.Combine(_dir.FullName, "missing.json"), _reporter) { PollInterval = Timeout.InfiniteTimeSpan })
            .Build();
        _configuration = configuration;

        var error = Assert.Single(Assert.Single(_reporter.Providers).LoadErrors);
        Assert.Equal("file not found", error.Message);
        Assert.Null(configuration["Reaper:Heartbeat:PingInterval"]);
    }

    [Fact]
    public void Invalid_JSON_on_reload_is_rejected_and_the_data_is_unchanged()
    {
        var configuration = Build(Good);
        var reloads = CountReloads(configuration);

        File.WriteAllText(_path, """{ "Reaper": { "Heartbeat": { "PingInterval": "9s" """);
        Provider.Poll();

        Assert.Equal(["rejected"], _events);
        Assert.Equal(0, reloads.Value);
        Assert.Equal("5s", configuration["Reaper:Heartbeat:PingInterval"]);
        Assert.Equal("c", configuration["ReverseProxy:Routes:r:ClusterId"]);
    }

    [Fact]
    public void An_empty_file_on_reload_is_rejected_and_the_data_is_unchanged()
    {
        var configuration = Build(Good);
        var reloads = CountReloads(configuration);

        File.WriteAllText(_path, string.Empty);
        Provider.Poll();

        Assert.Equal(["rejected"], _events);
        Assert.Equal(0, reloads.Value);
        Assert.Equal("5s", configuration["Reaper:Heartbeat:PingInterval"]);
    }

    [Theory]
    [InlineData("""{ "Reaper": { "Heartbeat": { "PingInterval": "0s" } } }""")]
    [InlineData("""{ "Reaper": { "Heartbeat": { "Mode": "Sometimes" } } }""")]
    [InlineData("""{ "Reaper": { "Policies": { "p": { "Typo": "1s" } } } }""")]
    [InlineData("""{ "ReverseProxy": { "Routes": { "r": { "Match": { "Path": "/r" } } } } }""")]
    [InlineData("""{ "Reaper": { "Heartbeat": { "PongTimeout": "-5s" } } }""")]
    [InlineData("""{ "ReversProxy": { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/r" } } } } }""")]
    public void Invalid_values_on_reload_are_rejected_and_the_data_is_unchanged(string bad)
    {
        var configuration = Build(Good);
        var reloads = CountReloads(configuration);

        File.WriteAllText(_path, bad);
        Provider.Poll();

        Assert.Equal(["rejected"], _events);
        Assert.Equal(0, reloads.Value);
        Assert.Equal("5s", configuration["Reaper:Heartbeat:PingInterval"]);
        Assert.Equal("c", configuration["ReverseProxy:Routes:r:ClusterId"]);
        Assert.Equal("/r/{**rest}", configuration["ReverseProxy:Routes:r:Match:Path"]);
    }

    [Fact]
    public void A_valid_change_is_applied_and_fires_the_reload_token()
    {
        var configuration = Build(Good);
        var reloads = CountReloads(configuration);

        File.WriteAllText(_path, GoodWithSecondRoute);
        Provider.Poll();

        Assert.Equal(["applied"], _events);
        Assert.Equal(1, reloads.Value);
        Assert.Equal("7s", configuration["Reaper:Heartbeat:PingInterval"]);
        Assert.Equal("/s/{**rest}", configuration["ReverseProxy:Routes:s:Match:Path"]);
    }

    [Fact]
    public void A_valid_change_after_a_rejected_one_is_applied()
    {
        var configuration = Build(Good);
        var reloads = CountReloads(configuration);

        File.WriteAllText(_path, "{ not json");
        Provider.Poll();
        File.WriteAllText(_path, """{ "Reaper": { "Heartbeat": { "PongTimeout": "-1s" } } }""");
        Provider.Poll();
        Assert.Equal("5s", configuration["Reaper:Heartbeat:PingInterval"]);

        File.WriteAllText(_path, GoodWithSecondRoute);
        Provider.Poll();

        Assert.Equal(["rejected", "rejected", "applied"], _events);
        Assert.Equal(1, reloads.Value);
        Assert.Equal("7s", configuration["Reaper:Heartbeat:PingInterval"]);
    }

    [Fact]
    public void Restoring_the_previous_good_file_after_a_rejected_one_is_applied()
    {
        var configuration = Build(Good);

        File.WriteAllText(_path, "{ not json");
        Provider.Poll();
        File.WriteAllText(_path, Good);
        Provider.Poll();

        Assert.Equal(["rejected", "applied"], _events);
        Assert.Equal("5s", configuration["Reaper:Heartbeat:PingInterval"]);
    }

    [Fact]
    public void A_removed_key_disappears_on_reload()
    {
        var configuration = Build(GoodWithSecondRoute);

        File.WriteAllText(_path, Good);
        Provider.Poll();

        Assert.Null(configuration["ReverseProxy:Routes:s:ClusterId"]);
        Assert.Empty(configuration.GetSection("ReverseProxy:Routes:s").GetChildren());
    }

    [Fact]
    public void An_unchanged_file_is_neither_applied_nor_rejected_again()
    {
        var configuration = Build(Good);
        var reloads = CountReloads(configuration);

        Provider.Poll();
        File.WriteAllText(_path, Good);
        Provider.Poll();
        File.WriteAllText(_path, "{ not json");
        Provider.Poll();
        Provider.Poll();

        Assert.Equal(["rejected"], _events);
        Assert.Equal(0, reloads.Value);
    }

    [Fact]
    public void A_briefly_missing_file_keeps_the_data_and_is_picked_up_when_it_returns()
    {
        var configuration = Build(Good);

        File.Delete(_path);
        Provider.Poll();
        Assert.Empty(_events);
        Assert.Equal("5s", configuration["Reaper:Heartbeat:PingInterval"]);

        File.WriteAllText(_path, GoodWithSecondRoute);
        Provider.Poll();
        Assert.Equal(["applied"], _events);
        Assert.Equal("7s", configuration["Reaper:Heartbeat:PingInterval"]);
    }

    [Fact]
    public void A_file_replaced_by_rename_is_seen()
    {
        var configuration = Build(Good);

        var temp = _path + ".new";
        File.WriteAllText(temp, GoodWithSecondRoute);
        File.Move(temp, _path, overwrite: true);
        Provider.Poll();

        Assert.Equal(["applied"], _events);
        Assert.Equal("7s", configuration["Reaper:Heartbeat:PingInterval"]);
    }

    [Fact]
    public void The_poll_timer_applies_a_change_on_its_own()
    {
        using var applied = new ManualResetEventSlim();
        _reporter.ReloadApplied += applied.Set;
        File.WriteAllText(_path, Good);
        var configuration = new ConfigurationBuilder()
            .Add(new ConfigFileSource(_path, _reporter) { PollInterval = TimeSpan.FromMilliseconds(20) })
            .Build();
        _configuration = configuration;

        File.WriteAllText(_path, GoodWithSecondRoute);

        Assert.True(applied.Wait(TimeSpan.FromSeconds(10)), "the timer did not apply the change within 10 s");
        Assert.Equal("7s", configuration["Reaper:Heartbeat:PingInterval"]);
    }

    private ConfigFileProvider Provider => Assert.Single(_reporter.Providers);

    private IConfigurationRoot Build(string json)
    {
        File.WriteAllText(_path, json);
        _configuration = new ConfigurationBuilder()
            .Add(new ConfigFileSource(_path, _reporter) { PollInterval = Timeout.InfiniteTimeSpan })
            .Build();
        return _configuration;
    }

    private static StrongBox<int> CountReloads(IConfigurationRoot configuration)
    {
        var count = new StrongBox<int>();
        Microsoft.Extensions.Primitives.ChangeToken.OnChange(configuration.GetReloadToken, () => count.Value++);
        return count;
    }

    [Fact]
    public void A_misspelled_section_is_reported_with_the_known_ones()
    {
        File.WriteAllText(_path, """{ "ReversProxy": { "Routes": {} } }""");
        var (_, _, errors) = ConfigFileProvider.ReadAndValidate(_path);

        var error = Assert.Single(errors);
        Assert.Equal("ReversProxy", error.Path);
        Assert.Contains("unknown top-level section 'ReversProxy'", error.Message);
        Assert.Contains("ReverseProxy", error.Message);
    }
}

-- analysis.analytic_sample_labelled: the analysis sample with the codebook's English and
-- Chinese label beside every coded model variable (`<variable>_label`, `<variable>_label_zh`).
-- Grain: wave x child in the models (as analysis.analytic_sample).
-- columns from: analysis.analytic_sample
create or replace view analysis.analytic_sample_labelled as
with labels as (
    select wave, variable, value, label_en, label_zh
    from staging.codebook_values
    where coding = 'analysis'
),

final as (
    select
        s.*,
        l_dep1.label_en as dep1_label,
        l_dep1.label_zh as dep1_label_zh,
        l_dep2.label_en as dep2_label,
        l_dep2.label_zh as dep2_label_zh,
        l_dep3.label_en as dep3_label,
        l_dep3.label_zh as dep3_label_zh,
        l_dep4.label_en as dep4_label,
        l_dep4.label_zh as dep4_label_zh,
        l_dep5.label_en as dep5_label,
        l_dep5.label_zh as dep5_label_zh,
        l_dep6.label_en as dep6_label,
        l_dep6.label_zh as dep6_label_zh,
        l_girl.label_en as girl_label,
        l_girl.label_zh as girl_label_zh,
        l_siblings.label_en as siblings_label,
        l_siblings.label_zh as siblings_label_zh,
        l_korean.label_en as korean_label,
        l_korean.label_zh as korean_label_zh,
        l_mother_edu.label_en as mother_edu_label,
        l_mother_edu.label_zh as mother_edu_label_zh,
        l_father_edu.label_en as father_edu_label,
        l_father_edu.label_zh as father_edu_label_zh,
        l_belong.label_en as belong_label,
        l_belong.label_zh as belong_label_zh,
        l_ht_ask_life.label_en as ht_ask_life_label,
        l_ht_ask_life.label_zh as ht_ask_life_label_zh,
        l_ht_talk_guardian.label_en as ht_talk_guardian_label,
        l_ht_talk_guardian.label_zh as ht_talk_guardian_label_zh,
        l_ht_praise.label_en as ht_praise_label,
        l_ht_praise.label_zh as ht_praise_label_zh,
        l_ht_satisfaction.label_en as ht_satisfaction_label,
        l_ht_satisfaction.label_zh as ht_satisfaction_label_zh,
        l_best_friends.label_en as best_friends_label,
        l_best_friends.label_zh as best_friends_label_zh,
        l_class_closeness.label_en as class_closeness_label,
        l_class_closeness.label_zh as class_closeness_label_zh,
        l_peer_satisfaction.label_en as peer_satisfaction_label,
        l_peer_satisfaction.label_zh as peer_satisfaction_label_zh,
        l_migration_group.label_en as migration_group_label,
        l_migration_group.label_zh as migration_group_label_zh
    from analysis.analytic_sample as s
    left join labels as l_dep1
        on l_dep1.wave = s.wave and l_dep1.variable = 'dep1' and l_dep1.value = cast(s.dep1 as varchar)
    left join labels as l_dep2
        on l_dep2.wave = s.wave and l_dep2.variable = 'dep2' and l_dep2.value = cast(s.dep2 as varchar)
    left join labels as l_dep3
        on l_dep3.wave = s.wave and l_dep3.variable = 'dep3' and l_dep3.value = cast(s.dep3 as varchar)
    left join labels as l_dep4
        on l_dep4.wave = s.wave and l_dep4.variable = 'dep4' and l_dep4.value = cast(s.dep4 as varchar)
    left join labels as l_dep5
        on l_dep5.wave = s.wave and l_dep5.variable = 'dep5' and l_dep5.value = cast(s.dep5 as varchar)
    left join labels as l_dep6
        on l_dep6.wave = s.wave and l_dep6.variable = 'dep6' and l_dep6.value = cast(s.dep6 as varchar)
    left join labels as l_girl
        on l_girl.wave = s.wave and l_girl.variable = 'girl' and l_girl.value = cast(s.girl as varchar)
    left join labels as l_siblings
        on l_siblings.wave = s.wave and l_siblings.variable = 'siblings' and l_siblings.value = cast(s.siblings as varchar)
    left join labels as l_korean
        on l_korean.wave = s.wave and l_korean.variable = 'korean' and l_korean.value = cast(s.korean as varchar)
    left join labels as l_mother_edu
        on l_mother_edu.wave = s.wave and l_mother_edu.variable = 'mother_edu' and l_mother_edu.value = cast(s.mother_edu as varchar)
    left join labels as l_father_edu
        on l_father_edu.wave = s.wave and l_father_edu.variable = 'father_edu' and l_father_edu.value = cast(s.father_edu as varchar)
    left join labels as l_belong
        on l_belong.wave = s.wave and l_belong.variable = 'belong' and l_belong.value = cast(s.belong as varchar)
    left join labels as l_ht_ask_life
        on l_ht_ask_life.wave = s.wave and l_ht_ask_life.variable = 'ht_ask_life' and l_ht_ask_life.value = cast(s.ht_ask_life as varchar)
    left join labels as l_ht_talk_guardian
        on l_ht_talk_guardian.wave = s.wave and l_ht_talk_guardian.variable = 'ht_talk_guardian' and l_ht_talk_guardian.value = cast(s.ht_talk_guardian as varchar)
    left join labels as l_ht_praise
        on l_ht_praise.wave = s.wave and l_ht_praise.variable = 'ht_praise' and l_ht_praise.value = cast(s.ht_praise as varchar)
    left join labels as l_ht_satisfaction
        on l_ht_satisfaction.wave = s.wave and l_ht_satisfaction.variable = 'ht_satisfaction' and l_ht_satisfaction.value = cast(s.ht_satisfaction as varchar)
    left join labels as l_best_friends
        on l_best_friends.wave = s.wave and l_best_friends.variable = 'best_friends' and l_best_friends.value = cast(s.best_friends as varchar)
    left join labels as l_class_closeness
        on l_class_closeness.wave = s.wave and l_class_closeness.variable = 'class_closeness' and l_class_closeness.value = cast(s.class_closeness as varchar)
    left join labels as l_peer_satisfaction
        on l_peer_satisfaction.wave = s.wave and l_peer_satisfaction.variable = 'peer_satisfaction' and l_peer_satisfaction.value = cast(s.peer_satisfaction as varchar)
    left join labels as l_migration_group
        on l_migration_group.wave = s.wave and l_migration_group.variable = 'migration_group' and l_migration_group.value = s.migration_group
)

select * from final;

comment on view analysis.analytic_sample_labelled is 'One row per wave x child in the models: analysis.analytic_sample with English and Chinese value labels from staging.codebook_values';
comment on column analysis.analytic_sample_labelled.dep1_label is 'English label of dep1 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.dep1_label_zh is 'Chinese label of dep1 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.dep2_label is 'English label of dep2 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.dep2_label_zh is 'Chinese label of dep2 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.dep3_label is 'English label of dep3 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.dep3_label_zh is 'Chinese label of dep3 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.dep4_label is 'English label of dep4 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.dep4_label_zh is 'Chinese label of dep4 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.dep5_label is 'English label of dep5 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.dep5_label_zh is 'Chinese label of dep5 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.dep6_label is 'English label of dep6 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.dep6_label_zh is 'Chinese label of dep6 (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.girl_label is 'English label of girl (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.girl_label_zh is 'Chinese label of girl (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.siblings_label is 'English label of siblings (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.siblings_label_zh is 'Chinese label of siblings (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.korean_label is 'English label of korean (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.korean_label_zh is 'Chinese label of korean (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.mother_edu_label is 'English label of mother_edu (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.mother_edu_label_zh is 'Chinese label of mother_edu (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.father_edu_label is 'English label of father_edu (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.father_edu_label_zh is 'Chinese label of father_edu (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.belong_label is 'English label of belong (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.belong_label_zh is 'Chinese label of belong (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.ht_ask_life_label is 'English label of ht_ask_life (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.ht_ask_life_label_zh is 'Chinese label of ht_ask_life (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.ht_talk_guardian_label is 'English label of ht_talk_guardian (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.ht_talk_guardian_label_zh is 'Chinese label of ht_talk_guardian (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.ht_praise_label is 'English label of ht_praise (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.ht_praise_label_zh is 'Chinese label of ht_praise (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.ht_satisfaction_label is 'English label of ht_satisfaction (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.ht_satisfaction_label_zh is 'Chinese label of ht_satisfaction (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.best_friends_label is 'English label of best_friends (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.best_friends_label_zh is 'Chinese label of best_friends (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.class_closeness_label is 'English label of class_closeness (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.class_closeness_label_zh is 'Chinese label of class_closeness (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.peer_satisfaction_label is 'English label of peer_satisfaction (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.peer_satisfaction_label_zh is 'Chinese label of peer_satisfaction (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.migration_group_label is 'English label of migration_group (staging.codebook_values, coding analysis)';
comment on column analysis.analytic_sample_labelled.migration_group_label_zh is 'Chinese label of migration_group (staging.codebook_values, coding analysis)';
